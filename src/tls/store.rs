//! The certificate store: `cache_dir` (mode 0700) holds, per ACME directory (`ACCOUNT/`, a
//! hash of its URL, with `directory` naming it), the account key (`account.key`) and one
//! `NAME.pem` per name (its private key, then its chain), each mode 0600 and replaced
//! atomically. Certificates survive restarts and are reused while valid; a name no longer
//! declared keeps its file (it is just not renewed).
//!
//! One account key for all names: it is made before the first order, so names ordered at
//! once never race to make one each.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::status::{CertFacts, Ledger};

pub(crate) struct Store {
    /// `cache_dir/ACCOUNT`.
    dir: PathBuf,
    account_key: Vec<u8>,
}

/// The directory of `directory_url`'s account and certificates in `cache_dir`.
pub(crate) fn account_dir(cache_dir: &Path, directory_url: &str) -> PathBuf {
    let digest = Sha256::digest(directory_url.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    cache_dir.join(hex)
}

fn private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

impl Store {
    /// Opens (making it if needed) the store of `directory_url` in `cache_dir`, with its
    /// account key (made now if there is none). Blocking.
    pub(crate) fn open(cache_dir: &Path, directory_url: &str) -> io::Result<Store> {
        private_dir(cache_dir)?;
        let dir = account_dir(cache_dir, directory_url);
        private_dir(&dir)?;
        let named = dir.join("directory");
        if std::fs::read_to_string(&named).ok().as_deref() != Some(directory_url) {
            crate::files::write_atomically(&named, directory_url.as_bytes(), 0o600)?;
        }
        let key_path = dir.join("account.key");
        let account_key = match std::fs::read(&key_path) {
            Ok(key) if !key.is_empty() => key,
            Ok(_) => {
                return Err(io::Error::other(format!(
                    "{} is empty: remove it and ten makes a new account",
                    key_path.display()
                )));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let key = rustls_acme::acme::Account::generate_key_pair();
                crate::files::write_atomically(&key_path, &key, 0o600)?;
                key
            }
            Err(error) => return Err(error),
        };
        Ok(Store { dir, account_key })
    }

    pub(crate) fn cert_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    /// Every certificate in the store, by name, with what it says. Blocking.
    pub(crate) fn certificates(&self) -> Vec<(String, Option<CertFacts>)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found: Vec<(String, Option<CertFacts>)> = entries
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name().into_string().ok()?;
                let name = file.strip_suffix(".pem")?.to_string();
                let facts = std::fs::read(entry.path())
                    .ok()
                    .and_then(|pem| CertFacts::parse(&pem));
                Some((name, facts))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }
}

/// The cache rustls-acme sees for one name: its certificate file, and the shared account.
/// What it loads and stores is noted in the name's ledger.
pub(crate) struct NameCache {
    pub store: Arc<Store>,
    pub name: String,
    pub ledger: Arc<Ledger>,
}

#[async_trait]
impl rustls_acme::CertCache for NameCache {
    type EC = io::Error;

    async fn load_cert(
        &self,
        _domains: &[String],
        _directory: &str,
    ) -> io::Result<Option<Vec<u8>>> {
        let path = self.store.cert_path(&self.name);
        let pem = tokio::task::spawn_blocking(move || match std::fs::read(&path) {
            Ok(pem) => Ok(Some(pem)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        })
        .await
        .map_err(io::Error::other)??;
        if let Some(pem) = &pem {
            self.ledger.certificate(&self.name, CertFacts::parse(pem));
        }
        Ok(pem)
    }

    async fn store_cert(
        &self,
        _domains: &[String],
        _directory: &str,
        pem: &[u8],
    ) -> io::Result<()> {
        self.ledger.certificate(&self.name, CertFacts::parse(pem));
        let (path, pem) = (self.store.cert_path(&self.name), pem.to_vec());
        tokio::task::spawn_blocking(move || crate::files::write_atomically(&path, &pem, 0o600))
            .await
            .map_err(io::Error::other)?
    }
}

#[async_trait]
impl rustls_acme::AccountCache for NameCache {
    type EA = io::Error;

    async fn load_account(
        &self,
        _contact: &[String],
        _directory: &str,
    ) -> io::Result<Option<Vec<u8>>> {
        Ok(Some(self.store.account_key.clone()))
    }

    async fn store_account(
        &self,
        _contact: &[String],
        _directory: &str,
        _key: &[u8],
    ) -> io::Result<()> {
        // The account key is made when the store opens, and always loaded from it.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_store_is_private_and_keeps_one_account_key() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("acme");
        let first = Store::open(&cache, "https://ca.example/dir").unwrap();
        let again = Store::open(&cache, "https://ca.example/dir").unwrap();
        assert_eq!(first.account_key, again.account_key);
        let other = Store::open(&cache, "https://other.example/dir").unwrap();
        assert_ne!(first.account_key, other.account_key);
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cache), 0o700);
        assert_eq!(mode(&first.dir), 0o700);
        assert_eq!(mode(&first.dir.join("account.key")), 0o600);
        assert_eq!(
            std::fs::read_to_string(first.dir.join("directory")).unwrap(),
            "https://ca.example/dir"
        );
    }
}
