//! Where a running server is found: [`ServeInfo`] in `{data_dir}/serve.json` and in the
//! per-user registry of running servers keyed by config path, written at start and read by
//! the CLI. Must not import what serves (`proxy`, `api`, the reconciler): the CLI reads it
//! without a server.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a running server can be reached, for the CLI: written to `{data_dir}/serve.json`
/// and to a per-user registry keyed by the config path (found even when the config does not
/// parse, so `ten diff` can show a broken config's errors).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServeInfo {
    pub pid: u32,
    /// Plain HTTP: the CLI's way in (on 127.0.0.1 when ten serves HTTPS).
    pub url: String,
    /// Where HTTPS is served, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<String>,
    pub config: String,
    pub data_dir: String,
}

const SERVE_INFO_FILE: &str = "serve.json";

/// The per-user directory of running servers: `$XDG_RUNTIME_DIR/ten`, else a private
/// directory in the temporary directory.
fn registry_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("ten"),
        _ => std::env::temp_dir().join(format!("ten-{}", nix::unistd::getuid())),
    }
}

/// Which config a server serves, for `/health`: 16 hex digits of the SHA-256 of its path (the
/// path itself is nobody's business).
pub(crate) fn config_id(config_path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(config_path.as_os_str().as_encoded_bytes());
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn registry_entry(config_path: &Path) -> PathBuf {
    registry_dir().join(format!("{}.json", config_id(config_path)))
}

pub(super) fn write_serve_info(
    info: &ServeInfo,
    data_dir: &Path,
    config_path: &Path,
) -> Vec<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let bytes = serde_json::to_vec_pretty(info).unwrap_or_default();
    let registry = registry_entry(config_path);
    if let Some(dir) = registry.parent() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    let paths = vec![data_dir.join(SERVE_INFO_FILE), registry];
    for path in &paths {
        if let Err(error) = crate::files::write_atomically(path, &bytes, 0o644) {
            tracing::warn!(%error, file = %path.display(), "cannot write where the CLI finds this server");
        }
    }
    paths
}

/// A running server (of any config of this user) that listens on `port`.
pub(crate) fn server_on_port(port: u16) -> Option<ServeInfo> {
    let suffix = format!(":{port}");
    std::fs::read_dir(registry_dir())
        .ok()?
        .filter_map(|entry| read_info(&entry.ok()?.path()))
        .find(|info| info.url.ends_with(&suffix))
}

/// The running server of `config_path`, if any.
pub(crate) fn find_server(config_path: &Path) -> Option<ServeInfo> {
    read_info(&registry_entry(config_path))
}

fn read_info(path: &Path) -> Option<ServeInfo> {
    let text = std::fs::read(path).ok()?;
    let info: ServeInfo = serde_json::from_slice(&text).ok()?;
    crate::runtime::proc::process_alive(info.pid, None).then_some(info)
}

/// The server whose data directory is `data_dir`, if one runs.
pub(crate) fn read_serve_info(data_dir: &Path) -> Option<ServeInfo> {
    read_info(&data_dir.join(SERVE_INFO_FILE))
}
