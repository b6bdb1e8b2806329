//! What most commands need first: the config file found, the desired state loaded, paths to
//! show relative to the working directory, and the data directory.

use std::path::{Path, PathBuf};

use crate::config::find_config;
use crate::desired::{self, Loaded};

use super::{CliError, GlobalArgs};

pub(super) struct Context {
    /// Absolute path of tenement.toml.
    pub config_path: PathBuf,
    /// Where the config's directory is, as shown to the user (relative to the working
    /// directory when below it).
    pub shown_dir: PathBuf,
    pub loaded: Loaded,
}

/// The config to use, per `--config`, `TENEMENT_CONFIG` or the working directory.
pub(super) fn find_config_path(global: &GlobalArgs) -> Result<PathBuf, CliError> {
    let cwd = std::env::current_dir()
        .map_err(|error| CliError::new(format!("cannot read the working directory: {error}")))?;
    find_config(global.config.as_deref(), &cwd).map_err(|error| {
        CliError::new(error.to_string()).hint(
            "run ten in the directory of your tenement.toml, or pass --config PATH (or set TENEMENT_CONFIG); `ten init` makes a new project in this directory",
        )
    })
}

impl Context {
    pub(super) fn load(global: &GlobalArgs) -> Result<Self, CliError> {
        let cwd = std::env::current_dir().map_err(|error| {
            CliError::new(format!("cannot read the working directory: {error}"))
        })?;
        let config_path = find_config_path(global)?;
        let loaded = desired::load(&config_path);
        let dir = config_path.parent().unwrap_or(Path::new("/"));
        let shown_dir = dir
            .strip_prefix(&cwd)
            .map_or_else(|_| dir.to_path_buf(), Path::to_path_buf);
        Ok(Self {
            config_path,
            shown_dir,
            loaded,
        })
    }

    /// The data directory: `--data-dir` / `TENEMENT_DATA_DIR`, else `settings.data_dir`.
    pub(super) fn data_dir(&self, global: &GlobalArgs) -> Option<PathBuf> {
        if let Some(dir) = &global.data_dir {
            return Some(std::env::current_dir().map_or_else(|_| dir.clone(), |cwd| cwd.join(dir)));
        }
        self.loaded
            .desired
            .as_ref()
            .map(|desired| desired.config.settings.data_dir.clone())
    }

    /// A path for messages: relative to the working directory when below it.
    pub(super) fn shown(&self, path: &Path) -> PathBuf {
        std::env::current_dir()
            .ok()
            .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
            .unwrap_or_else(|| path.to_path_buf())
    }
}

impl Context {
    /// Prints the diagnostics (warnings too) to stderr and returns the desired state when it
    /// is valid.
    pub(super) fn report_diagnostics(&self) -> Option<&crate::desired::DesiredState> {
        if !self.loaded.diagnostics.is_empty() {
            super::print_stderr(&crate::render::render_diagnostics(
                &self.loaded.diagnostics,
                &self.shown_dir,
                super::stderr_style(),
            ));
        }
        self.loaded.desired.as_ref()
    }
}

/// Skips freeing `value`: the process exits right after the command, and freeing a large
/// desired state or plan one allocation at a time only costs time (tens of milliseconds for
/// 10,000 instances). The OS reclaims the memory at exit.
pub(super) fn skip_drop<T>(value: T) {
    std::mem::forget(value);
}
