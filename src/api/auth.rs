//! Bearer-token check of the control API. The admin token lives in `{data_dir}/api_token`
//! (mode 0600), created when `ten serve` starts without one, so the CLI on the same machine
//! works at once; `ten token-gen` rotates it. Compared in constant time.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::header::{AUTHORIZATION, HeaderMap};

pub const TOKEN_FILE: &str = "api_token";

pub struct Auth {
    token: ArcSwap<String>,
    path: PathBuf,
}

pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKEN_FILE)
}

/// A new token: 256 random bits as hex.
pub fn new_token() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| io::Error::other(error.to_string()))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Writes `token` to `path`, readable by its owner only.
pub fn write_token(path: &Path, token: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{token}\n").as_bytes())
}

impl Auth {
    /// Reads the admin token, creating it (0600) when there is none. Returns whether it was
    /// created.
    pub fn load_or_create(data_dir: &Path) -> io::Result<(Auth, bool)> {
        let path = token_path(data_dir);
        let (token, created) = match fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => (text.trim().to_string(), false),
            _ => {
                let token = new_token()?;
                write_token(&path, &token)?;
                (token, true)
            }
        };
        Ok((
            Auth {
                token: ArcSwap::from_pointee(token),
                path,
            },
            created,
        ))
    }

    /// A new admin token replaces the old one, in memory and in its file.
    pub fn rotate(&self) -> io::Result<(String, PathBuf)> {
        let token = new_token()?;
        write_token(&self.path, &token)?;
        self.token.store(Arc::new(token.clone()));
        Ok((token, self.path.clone()))
    }

    /// Whether the request carries the token (`Authorization: Bearer TOKEN`).
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
        else {
            return false;
        };
        constant_time_eq(presented.trim().as_bytes(), self.token.load().as_bytes())
    }
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn the_token_is_created_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, created) = Auth::load_or_create(dir.path()).unwrap();
        assert!(created);
        let token = auth.token.load().to_string();
        assert_eq!(token.len(), 64);
        let mode = fs::metadata(token_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = Auth::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert!(again.allows(&bearer(&token)));
        assert!(!auth.allows(&HeaderMap::new()));
        assert!(!auth.allows(&bearer("nope")));
    }

    #[test]
    fn rotation_replaces_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = Auth::load_or_create(dir.path()).unwrap();
        let old = auth.token.load().to_string();
        let (new, path) = auth.rotate().unwrap();
        assert!(auth.allows(&bearer(&new)));
        assert!(!auth.allows(&bearer(&old)));
        assert_eq!(fs::read_to_string(path).unwrap().trim(), new);
    }
}
