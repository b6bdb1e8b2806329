//! The token store: `{data_dir}/.ten/tokens.json` (mode 0600, written to a temporary file and
//! renamed) holds the SHA-256 of every API token with its scope (admin, or tenant with its
//! instance) and creation time, never a token itself. There is one admin token and at most one
//! token per instance (a new one replaces the old one). The plaintext admin token is also in
//! `{data_dir}/api_token` (0600 from its creation) for the CLI on this machine.
//!
//! Changes take an exclusive lock (`.ten/tokens.lock`), read the store, change it and write
//! it, so the server and an offline `ten token-gen` never lose each other's changes. Blocking
//! I/O: the server calls it off the async runtime.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::names::InstanceKey;

use super::scope::Scope;

pub(crate) const TOKEN_FILE: &str = "api_token";
/// ten's private files in the data directory.
pub(crate) const PRIVATE_DIR: &str = ".ten";
pub(crate) const STORE_FILE: &str = "tokens.json";
const LOCK_FILE: &str = "tokens.lock";
/// Version of the store's format; a newer one is refused.
pub(crate) const STORE_FORMAT: u32 = 1;

pub(crate) fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

pub(crate) fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join(PRIVATE_DIR).join(STORE_FILE)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} is not a valid token store: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path} has format {found}, newer than this ten knows ({STORE_FORMAT}); upgrade ten")]
    Newer { path: PathBuf, found: u32 },
    #[error("cannot make a token: {0}")]
    Random(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TokenError {
    let path = path.to_path_buf();
    move |source| TokenError::Io {
        action,
        path,
        source,
    }
}

/// A new token: 256 random bits as hex.
pub(crate) fn new_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| TokenError::Random(error.to_string()))?;
    Ok(hex(&bytes))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(super) type Digest32 = [u8; 32];

pub(super) fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `text` looks like a token ten made: 64 hex digits.
pub(super) fn is_strong(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// One stored token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    /// `admin` or `tenant`.
    pub scope: ScopeKind,
    /// The instance of a tenant token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceKey>,
    /// `sha256:` and 64 hex digits.
    pub hash: String,
    pub created_at_unix: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScopeKind {
    Admin,
    Tenant,
}

impl TokenRecord {
    fn scope(&self) -> Option<Scope> {
        match (self.scope, &self.instance) {
            (ScopeKind::Admin, None) => Some(Scope::Admin),
            (ScopeKind::Tenant, Some(key)) => Some(Scope::Tenant(key.clone())),
            _ => None,
        }
    }

    pub(super) fn digest(&self) -> Option<Digest32> {
        let hex = self.hash.strip_prefix("sha256:")?;
        if !is_strong(hex) {
            return None;
        }
        let mut out = [0u8; 32];
        for (index, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).ok()?;
        }
        Some(out)
    }
}

/// The token store file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TokenStore {
    pub format_version: u32,
    pub tokens: Vec<TokenRecord>,
}

impl TokenStore {
    /// Reads the store of `data_dir`; none yet is an empty store.
    pub(crate) fn read(data_dir: &Path) -> Result<TokenStore, TokenError> {
        let path = store_path(data_dir);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(TokenStore {
                    format_version: STORE_FORMAT,
                    tokens: Vec::new(),
                });
            }
            Err(error) => return Err(io_error("read", &path)(error)),
        };
        let store: TokenStore =
            serde_json::from_slice(&bytes).map_err(|error| TokenError::Corrupt {
                path: path.clone(),
                message: error.to_string(),
            })?;
        if store.format_version > STORE_FORMAT {
            return Err(TokenError::Newer {
                path,
                found: store.format_version,
            });
        }
        if let Some(bad) = store
            .tokens
            .iter()
            .find(|record| record.scope().is_none() || record.digest().is_none())
        {
            return Err(TokenError::Corrupt {
                path,
                message: format!("a token of scope {:?} is malformed", bad.scope),
            });
        }
        Ok(store)
    }

    pub(super) fn write(&self, data_dir: &Path) -> Result<(), TokenError> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        write_private(&store_path(data_dir), &bytes)
    }

    pub(crate) fn find(&self, scope: &Scope) -> Option<&TokenRecord> {
        self.tokens
            .iter()
            .find(|record| record.scope().as_ref() == Some(scope))
    }

    /// Makes `token` the one token of `scope`.
    pub(super) fn put(&mut self, scope: &Scope, token: &str) {
        self.remove(scope);
        let (kind, instance) = match scope {
            Scope::Admin => (ScopeKind::Admin, None),
            Scope::Tenant(key) => (ScopeKind::Tenant, Some(key.clone())),
        };
        self.tokens.push(TokenRecord {
            scope: kind,
            instance,
            hash: format!("sha256:{}", hex(&digest(token))),
            created_at_unix: crate::observed::record::unix_now(),
        });
    }

    fn remove(&mut self, scope: &Scope) -> bool {
        let before = self.tokens.len();
        self.tokens
            .retain(|record| record.scope().as_ref() != Some(scope));
        self.tokens.len() != before
    }

    pub(super) fn table(&self) -> TokenTable {
        TokenTable {
            by_digest: self
                .tokens
                .iter()
                .filter_map(|record| Some((record.digest()?, record.scope()?)))
                .collect(),
        }
    }
}

/// Writes `bytes` to `path` for its owner only (mode 0600, from the temporary file's
/// creation: see `files::write_atomically`).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TokenError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    crate::files::write_atomically(path, bytes, 0o600).map_err(io_error("write", path))
}

/// Holds the store's lock (an exclusive `flock` on `.ten/tokens.lock`) while alive.
pub(super) struct StoreLock(#[allow(dead_code)] nix::fcntl::Flock<fs::File>);

pub(super) fn lock_store(data_dir: &Path) -> Result<StoreLock, TokenError> {
    let dir = data_dir.join(PRIVATE_DIR);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_error("create", &dir))?;
    let path = dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_error("open", &path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map(StoreLock)
        .map_err(|(_, errno)| io_error("lock", &path)(io::Error::from(errno)))
}

/// A token just made: shown once.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub scope: Scope,
    /// Where the plaintext was written (the admin token's `api_token`), if anywhere.
    pub file: Option<PathBuf>,
}

impl From<Issued> for super::types::TokenResponse {
    fn from(issued: Issued) -> Self {
        let (scope, instance) = match issued.scope {
            Scope::Admin => ("admin", None),
            Scope::Tenant(key) => ("tenant", Some(key)),
        };
        Self {
            token: issued.token,
            scope: scope.to_string(),
            instance,
            file: issued.file.map(|path| path.display().to_string()),
        }
    }
}

/// Makes a new token for `scope` in the store of `data_dir`, replacing the scope's previous
/// one (the admin token is also written to `api_token`). Blocking I/O.
pub(crate) fn issue(data_dir: &Path, scope: &Scope) -> Result<Issued, TokenError> {
    issue_in(data_dir, scope).map(|(issued, _)| issued)
}

pub(super) fn issue_in(data_dir: &Path, scope: &Scope) -> Result<(Issued, TokenStore), TokenError> {
    let lock = lock_store(data_dir)?;
    let mut store = TokenStore::read(data_dir)?;
    let issued = issue_locked(data_dir, &mut store, scope, &lock)?;
    Ok((issued, store))
}

/// `issue` with the lock held and the store read. The store is written first: if writing
/// `api_token` fails, the server keeps the token it had.
pub(super) fn issue_locked(
    data_dir: &Path,
    store: &mut TokenStore,
    scope: &Scope,
    _lock: &StoreLock,
) -> Result<Issued, TokenError> {
    let token = new_token()?;
    store.format_version = STORE_FORMAT;
    store.put(scope, &token);
    store.write(data_dir)?;
    let file = match scope {
        Scope::Admin => {
            let path = token_path(data_dir);
            write_private(&path, format!("{token}\n").as_bytes())?;
            Some(path)
        }
        Scope::Tenant(_) => None,
    };
    Ok(Issued {
        token,
        scope: scope.clone(),
        file,
    })
}

/// Removes the token of `scope`, if there is one. Blocking I/O.
pub(crate) fn revoke(data_dir: &Path, scope: &Scope) -> Result<(bool, TokenStore), TokenError> {
    let _lock = lock_store(data_dir)?;
    let mut store = TokenStore::read(data_dir)?;
    let removed = store.remove(scope);
    if removed {
        store.write(data_dir)?;
    }
    Ok((removed, store))
}

/// Hashes of the valid tokens and their scopes.
#[derive(Default)]
pub(super) struct TokenTable {
    by_digest: HashMap<Digest32, Scope>,
}

impl TokenTable {
    pub(super) fn check(&self, token: &str) -> Option<Scope> {
        let presented = digest(token);
        let (stored, scope) = self.by_digest.get_key_value(&presented)?;
        constant_time_eq(stored, &presented).then(|| scope.clone())
    }
}

/// Equality whose time does not depend on where the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn tenant(key: &str) -> Scope {
        Scope::Tenant(InstanceKey::parse(key).unwrap())
    }

    #[test]
    fn the_store_holds_hashes_one_token_per_scope_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let alice = issue(dir.path(), &tenant("notes:alice")).unwrap();
        assert_eq!(alice.file, None);
        assert!(is_strong(&alice.token));
        let admin = issue(dir.path(), &Scope::Admin).unwrap();
        assert_eq!(admin.file, Some(token_path(dir.path())));
        assert_eq!(
            fs::read_to_string(token_path(dir.path())).unwrap(),
            format!("{}\n", admin.token)
        );
        let again = issue(dir.path(), &tenant("notes:alice")).unwrap();
        issue(dir.path(), &tenant("notes:bob")).unwrap();

        let store = TokenStore::read(dir.path()).unwrap();
        assert_eq!(store.format_version, STORE_FORMAT);
        assert_eq!(store.tokens.len(), 3, "admin, alice (replaced once), bob");
        let table = store.table();
        assert_eq!(table.check(&again.token), Some(tenant("notes:alice")));
        assert_eq!(table.check(&alice.token), None, "replaced");
        assert_eq!(table.check(&admin.token), Some(Scope::Admin));
        assert_eq!(table.check(""), None);

        let text = fs::read_to_string(store_path(dir.path())).unwrap();
        for token in [&alice.token, &again.token, &admin.token] {
            assert!(!text.contains(token.as_str()), "{text}");
        }
        assert!(text.contains(&format!("sha256:{}", hex(&digest(&again.token)))));
        assert_eq!(mode(&store_path(dir.path())), 0o600);
        assert_eq!(mode(&token_path(dir.path())), 0o600);
        assert_eq!(mode(&dir.path().join(PRIVATE_DIR)), 0o700);
        // No temporary file of `files::write_atomically` is left, here or beside api_token.
        let leftovers: Vec<_> = [dir.path().join(PRIVATE_DIR), dir.path().to_path_buf()]
            .iter()
            .flat_map(|dir| fs::read_dir(dir).unwrap().flatten())
            .map(|entry| entry.file_name())
            .filter(|name| name.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        let (removed, store) = revoke(dir.path(), &tenant("notes:alice")).unwrap();
        assert!(removed);
        assert_eq!(store.table().check(&again.token), None);
        assert!(!revoke(dir.path(), &tenant("notes:alice")).unwrap().0);
    }

    #[test]
    fn a_broken_or_newer_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(dir.path());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "{not json").unwrap();
        let error = TokenStore::read(dir.path()).unwrap_err();
        assert!(matches!(error, TokenError::Corrupt { .. }), "{error}");
        fs::write(&path, r#"{"format_version": 2, "tokens": []}"#).unwrap();
        let error = TokenStore::read(dir.path()).unwrap_err();
        assert!(error.to_string().contains("upgrade ten"), "{error}");
        fs::write(
            &path,
            r#"{"format_version": 1, "tokens": [{"scope": "tenant", "hash": "sha256:00", "created_at_unix": 1}]}"#,
        )
        .unwrap();
        let error = TokenStore::read(dir.path()).unwrap_err();
        assert!(error.to_string().contains("malformed"), "{error}");
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
