//! Bearer-token check of the control API. The admin token lives in `{data_dir}/api_token`
//! (mode 0600), created when `ten serve` starts without one, so the CLI on the same machine
//! works at once. Compared in constant time.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hyper::header::{AUTHORIZATION, HeaderMap};

pub const TOKEN_FILE: &str = "api_token";

pub struct Auth {
    token: String,
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

impl Auth {
    /// Reads the admin token, creating it (0600) when there is none. Returns whether it was
    /// created.
    pub fn load_or_create(data_dir: &Path) -> io::Result<(Auth, bool)> {
        let path = token_path(data_dir);
        match fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => Ok((
                Auth {
                    token: text.trim().to_string(),
                },
                false,
            )),
            Ok(_) | Err(_) => {
                fs::create_dir_all(data_dir)?;
                let token = new_token()?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)?;
                file.write_all(format!("{token}\n").as_bytes())?;
                Ok((Auth { token }, true))
            }
        }
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
        constant_time_eq(presented.trim().as_bytes(), self.token.as_bytes())
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

    #[test]
    fn the_token_is_created_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, created) = Auth::load_or_create(dir.path()).unwrap();
        assert!(created);
        assert_eq!(auth.token.len(), 64);
        let mode = fs::metadata(token_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = Auth::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(again.token, auth.token);
        let mut headers = HeaderMap::new();
        assert!(!auth.allows(&headers));
        headers.insert(
            AUTHORIZATION,
            format!("Bearer {}", auth.token).parse().unwrap(),
        );
        assert!(auth.allows(&headers));
        headers.insert(AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert!(!auth.allows(&headers));
    }
}
