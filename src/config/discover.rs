//! Finding tenement.toml: `--config` (or `TENEMENT_CONFIG`, which clap folds into the same
//! flag), else `./tenement.toml` in the working directory or the nearest parent that has one.

use std::path::{Path, PathBuf};

use super::parse::normalize;

pub const CONFIG_FILE: &str = "tenement.toml";

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("config file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("no {CONFIG_FILE} in {cwd} or any parent directory")]
    NotFound { cwd: PathBuf },
}

/// The absolute path of the config to use. `explicit` may name the file or its directory.
pub fn find_config(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, DiscoverError> {
    if let Some(path) = explicit {
        let path = normalize(&cwd.join(path));
        let path = if path.is_dir() {
            path.join(CONFIG_FILE)
        } else {
            path
        };
        return if path.is_file() {
            Ok(path)
        } else {
            Err(DiscoverError::Missing { path })
        };
    }
    cwd.ancestors()
        .map(|dir| dir.join(CONFIG_FILE))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| DiscoverError::NotFound {
            cwd: cwd.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_up_to_the_nearest_config() {
        let root = tempfile::tempdir().unwrap();
        let nested = root.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(root.path().join(CONFIG_FILE), "").unwrap();
        assert_eq!(
            find_config(None, &nested).unwrap(),
            root.path().join(CONFIG_FILE)
        );
    }

    #[test]
    fn explicit_paths_may_name_a_directory() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join(CONFIG_FILE), "").unwrap();
        let found = find_config(Some(root.path()), Path::new("/")).unwrap();
        assert_eq!(found, root.path().join(CONFIG_FILE));
        let missing = find_config(Some(Path::new("nope.toml")), root.path());
        assert!(matches!(missing, Err(DiscoverError::Missing { .. })));
    }
}
