//! `isolation = "sandbox"`: the tenant runs under gVisor (`runsc`, Debian package `runsc`),
//! a user-space kernel between it and the host.
//!
//! Each process gets an OCI bundle (`{data_dir}/.ten/sandbox/<name>/config.json`): the host's
//! `/` read-only as its root, its data directory (and socket directory) bind-mounted
//! writable, a private `/tmp`, its own PID, IPC, UTS and mount namespaces, and the host's
//! network, so it listens on 127.0.0.1:PORT like any tenant. ten runs
//! `runsc --network=host --ignore-cgroups run --bundle DIR NAME`: runsc stays in the
//! foreground, passes signals on to the sandboxed process, hands its output through, and
//! exits as it did. The cgroup is ten's (joined before exec, so the sandbox is in it too);
//! `--ignore-cgroups` keeps runsc from moving itself elsewhere. After the end,
//! `runsc delete --force` removes the container's state.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use super::process::Launch;

/// Where runsc and its state are.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub runsc: PathBuf,
    /// runsc's `--root` (its container state).
    pub state: PathBuf,
    /// Bundles, one directory per process.
    pub bundles: PathBuf,
}

impl Sandbox {
    /// runsc from PATH, with state under `ten_dir` (`{data_dir}/.ten`); `None` when runsc is
    /// not installed.
    pub fn find(ten_dir: &Path) -> Option<Sandbox> {
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
        let runsc = std::env::split_paths(&path)
            .map(|dir| dir.join("runsc"))
            .find(|candidate| candidate.is_file())?;
        Some(Sandbox {
            runsc,
            state: ten_dir.join("runsc"),
            bundles: ten_dir.join("sandbox"),
        })
    }

    /// Writes the bundle of process `name` and returns the command line that runs it.
    pub fn prepare(&self, launch: &Launch, name: &str) -> io::Result<Vec<String>> {
        let bundle = self.bundles.join(name);
        fs::create_dir_all(&bundle)?;
        fs::create_dir_all(&self.state)?;
        let config = bundle_config(launch);
        fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&config).map_err(io::Error::other)?,
        )?;
        let mut argv = vec![
            self.runsc.display().to_string(),
            format!("--root={}", self.state.display()),
            "--network=host".into(),
            "--ignore-cgroups".into(),
        ];
        if launch.socket_dir.is_some() {
            // A Unix socket made inside must be a real one on the host.
            argv.push("--host-uds=all".into());
        }
        argv.extend([
            "run".into(),
            format!("--bundle={}", bundle.display()),
            name.to_string(),
        ]);
        Ok(argv)
    }

    /// Removes what is left of process `name`: runsc's state and the bundle. Blocking.
    pub fn cleanup(&self, name: &str) {
        let deleted = Command::new(&self.runsc)
            .arg(format!("--root={}", self.state.display()))
            .args(["delete", "--force", name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(error) = deleted {
            tracing::debug!(%error, name, "runsc delete failed");
        }
        let _ = fs::remove_dir_all(self.bundles.join(name));
    }
}

/// The OCI runtime config of a tenant process.
fn bundle_config(launch: &Launch) -> serde_json::Value {
    let env: Vec<String> = launch
        .env
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777"]}),
        json!({"destination": launch.data_dir, "type": "bind", "source": launch.data_dir,
               "options": ["rbind", "rw"]}),
    ];
    if let Some(dir) = &launch.socket_dir {
        mounts.push(json!({"destination": dir, "type": "bind", "source": dir,
                           "options": ["rbind", "rw"]}));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": launch.uid.unwrap_or(0), "gid": launch.gid.unwrap_or(0)},
            "args": launch.argv,
            "env": env,
            "cwd": launch.workdir,
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 65536, "soft": 65536}],
        },
        "root": {"path": "/", "readonly": true},
        "hostname": launch.key.id.as_str(),
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
        },
    })
}

/// The directory of a sandboxed tenant's Unix socket, which must be writable inside.
pub fn socket_dir(socket: &Path) -> Option<PathBuf> {
    socket.parent().map(Path::to_path_buf)
}
