//! `isolation = "sandbox"`: the tenant runs under gVisor (`runsc`, Debian package `runsc`),
//! a user-space kernel between it and the host.
//!
//! Each process gets an OCI bundle (`{data_dir}/.ten/sandbox/<name>/config.json`): the host's
//! `/` read-only as its root, a private `/tmp`, then bind mounts: its workdir and the paths
//! its argv names inside the config directory read-only (so a project under `/tmp`, as in the
//! quick start, is still there inside), its data directory (and socket directory) writable;
//! its own PID, IPC, UTS and mount namespaces, and the host's network, so it listens on
//! 127.0.0.1:PORT like any tenant. ten runs
//! `runsc --network=host --ignore-cgroups run --bundle DIR NAME`: runsc stays in the
//! foreground, passes signals on to the sandboxed process, hands its output through, and
//! exits as it did. The cgroup is ten's (joined before exec, so the sandbox is in it too);
//! `--ignore-cgroups` keeps runsc from moving itself elsewhere. After the end,
//! `runsc delete --force` removes the container's state; it is waited for through the reaper
//! (`reaper::run_helper`), like every child of ten.
//!
//! Reads the process's description from `launch`; must not import `process`, which runs
//! the command line made here.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

use super::launch::Launch;
use super::reaper::run_helper;
use crate::config::parse::normalize;

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

    /// Removes what is left of process `name`: runsc's state and the bundle. Blocking (runsc
    /// is waited for through the reaper): call it on a blocking thread.
    pub fn cleanup(&self, name: &str) {
        let deleted = run_helper(
            Command::new(&self.runsc)
                .arg(format!("--root={}", self.state.display()))
                .args(["delete", "--force", name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        match deleted {
            Ok(exit) if exit.is_clean() => {}
            Ok(exit) => tracing::warn!(
                name,
                code = exit.code,
                signal = exit.signal,
                "runsc delete failed; its container state may be left in {}",
                self.state.display()
            ),
            Err(error) => tracing::warn!(%error, name, "cannot run runsc delete"),
        }
        let _ = fs::remove_dir_all(self.bundles.join(name));
    }
}

/// A host directory or file shown at the same path inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bind {
    path: PathBuf,
    writable: bool,
}

/// What a tenant sees of the host besides the read-only root, below the private `/tmp` as
/// well: read-only, its workdir, every existing path its argv names inside the config
/// directory (a relative one from the workdir), and the files it names below `/tmp` outside
/// it (the sandbox's private `/tmp` would hide them); writable, its data directory and socket
/// directory. Nothing else outside the config directory (the host's `/` is visible anyway).
/// A path at or below a writable bind is not bound read-only, nor one below another
/// read-only bind; a bind comes after every bind above it (mounts are made in order).
fn binds(launch: &Launch) -> Vec<Bind> {
    let mut writable: Vec<PathBuf> = vec![normalize(&launch.data_dir)];
    writable.extend(launch.socket_dir.as_deref().map(normalize));
    let workdir = normalize(&launch.workdir);
    let config_dir = normalize(&launch.config_dir);
    let real_config_dir = fs::canonicalize(&config_dir).ok();
    // The argv's paths in the config directory, whose targets are in it too (a symlink to
    // elsewhere is not followed out).
    let named = launch
        .argv
        .iter()
        .filter(|arg| !arg.is_empty())
        .map(|arg| normalize(&workdir.join(arg)))
        .filter(|path| path.starts_with(&config_dir))
        .filter(|path| {
            let real = fs::canonicalize(path).ok();
            matches!((&real, &real_config_dir), (Some(real), Some(dir)) if real.starts_with(dir))
        });
    // Files the command names below `/tmp` outside the project (the program, a script): the
    // sandbox's `/tmp` is private and would hide them, while the rest of the host's `/` is
    // seen read-only. Only those files, not their directories.
    let in_tmp: Vec<PathBuf> = launch
        .argv
        .iter()
        .filter(|arg| arg.contains('/'))
        .map(|arg| normalize(&workdir.join(arg)))
        .filter(|path| path.starts_with("/tmp") && !path.starts_with(&config_dir) && path.is_file())
        .collect();
    let candidates = std::iter::once(workdir.clone())
        .filter(|path| path != Path::new("/") && path.exists())
        .chain(in_tmp)
        .chain(named);
    let mut read_only: Vec<PathBuf> = Vec::new();
    for path in candidates {
        let covered = writable
            .iter()
            .chain(&read_only)
            .any(|bound| path.starts_with(bound));
        if !covered {
            read_only.retain(|bound| !bound.starts_with(&path));
            read_only.push(path);
        }
    }
    writable.dedup();
    let mut binds: Vec<Bind> = read_only
        .into_iter()
        .map(|path| Bind {
            path,
            writable: false,
        })
        .chain(writable.into_iter().map(|path| Bind {
            path,
            writable: true,
        }))
        .collect();
    // Shallower first: a bind below another is made after it, so it is not hidden by it.
    binds.sort_by_key(|bind| bind.path.components().count());
    binds
}

/// The OCI runtime config of a tenant process.
fn bundle_config(launch: &Launch) -> serde_json::Value {
    let env: Vec<String> = launch
        .env
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    // Special file systems first, then /tmp; binds below /tmp come after it.
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
    ];
    for bind in binds(launch) {
        let access = if bind.writable { "rw" } else { "ro" };
        mounts.push(
            json!({"destination": bind.path, "type": "bind", "source": bind.path,
                           "options": ["rbind", access]}),
        );
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Isolation;
    use crate::desired::FieldMap;
    use crate::names::InstanceKey;
    use crate::runtime::cgroup::Limits;

    /// A project as the quick start makes it: tenement.toml's directory with the program,
    /// and the data directory inside it.
    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in ["app.py", "lib/util.py", "web/main.py", "tenement.toml"] {
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        fs::create_dir_all(dir.path().join("tenement-data/notes/a")).unwrap();
        dir
    }

    fn launch(config_dir: &Path, workdir: &Path, argv: &[&str]) -> Launch {
        Launch {
            key: InstanceKey::parse("notes:a").unwrap(),
            argv: argv.iter().map(ToString::to_string).collect(),
            workdir: workdir.to_path_buf(),
            config_dir: config_dir.to_path_buf(),
            env: Vec::new(),
            data_dir: config_dir.join("tenement-data/notes/a"),
            stdout: config_dir.join("stdout.raw"),
            stderr: config_dir.join("stderr.raw"),
            port: 30001,
            spec: Arc::new(FieldMap::new()),
            isolation: Isolation::Sandbox,
            limits: Limits::default(),
            storage_quota_mb: None,
            user: None,
            socket_dir: None,
            uid: None,
            gid: None,
        }
    }

    /// The binds as `ro PATH` / `rw PATH` lines, paths relative to `root` where inside it.
    fn shown(binds: &[Bind], root: &Path) -> Vec<String> {
        binds
            .iter()
            .map(|bind| {
                let path = match bind.path.strip_prefix(root) {
                    Ok(relative) if relative.as_os_str().is_empty() => ".".into(),
                    Ok(relative) => format!("./{}", relative.display()),
                    Err(_) => bind.path.display().to_string(),
                };
                format!("{} {path}", if bind.writable { "rw" } else { "ro" })
            })
            .collect()
    }

    #[test]
    fn the_workdir_and_the_programs_named_in_the_project_are_bound_read_only() {
        let dir = project();
        let root = dir.path();
        std::os::unix::fs::symlink("/etc", root.join("outside")).unwrap();
        let cases: [(&str, PathBuf, Vec<String>, Vec<&str>); 5] = [
            (
                "the quick start: a relative program in the project's directory",
                root.to_path_buf(),
                vec!["python3".into(), "app.py".into()],
                vec!["ro .", "rw ./tenement-data/notes/a"],
            ),
            (
                "absolute paths in the project from a workdir outside it; missing ones, \
                 paths outside and a symlink leading out are not bound",
                PathBuf::from("/"),
                vec![
                    "python3".into(),
                    root.join("web/main.py").display().to_string(),
                    root.join("missing.py").display().to_string(),
                    root.join("outside").display().to_string(),
                    "/etc/hostname".into(),
                    "--port=8080".into(),
                ],
                vec!["ro ./web/main.py", "rw ./tenement-data/notes/a"],
            ),
            (
                "a relative path out of the workdir, still in the project",
                root.join("web"),
                vec!["python3".into(), "../lib/util.py".into(), "main.py".into()],
                vec!["ro ./web", "ro ./lib/util.py", "rw ./tenement-data/notes/a"],
            ),
            (
                "a path below another bind is not bound again; a parent named later replaces it",
                PathBuf::from("/"),
                vec![
                    root.join("lib/util.py").display().to_string(),
                    root.join("lib").display().to_string(),
                    root.join("tenement-data/notes/a").display().to_string(),
                ],
                vec!["ro ./lib", "rw ./tenement-data/notes/a"],
            ),
            (
                "a workdir that is missing, or the root, is not bound",
                root.join("nowhere"),
                vec!["python3".into(), "/".into()],
                vec!["rw ./tenement-data/notes/a"],
            ),
        ];
        for (case, workdir, argv, expected) in cases {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let binds = binds(&launch(root, &workdir, &argv));
            assert_eq!(shown(&binds, root), expected, "{case}");
        }
    }

    #[test]
    fn files_the_command_names_below_tmp_outside_the_project_are_bound_read_only_alone() {
        let dir = project();
        let root = dir.path();
        let tools = tempfile::tempdir_in("/tmp").unwrap();
        let program = tools.path().join("app");
        fs::write(&program, "").unwrap();
        let beside = tools.path().join("secret.txt");
        fs::write(&beside, "").unwrap();
        let script = tools.path().join("app.py");
        fs::write(&script, "").unwrap();
        let argv = ["python3", script.to_str().unwrap(), "/tmp"];
        let bound = binds(&launch(root, Path::new("/"), &argv));
        assert_eq!(
            shown(&bound, root),
            [
                format!("ro {}", script.display()),
                "rw ./tenement-data/notes/a".to_string()
            ],
            "the script is bound, not its directory nor /tmp"
        );
        let argv = [program.to_str().unwrap()];
        let bound = binds(&launch(root, Path::new("/"), &argv));
        assert_eq!(
            shown(&bound, root),
            [
                format!("ro {}", program.display()),
                "rw ./tenement-data/notes/a".to_string()
            ]
        );
        assert!(beside.exists());
    }

    #[test]
    fn binds_come_after_the_mounts_they_are_below() {
        let dir = project();
        let root = dir.path();
        let mut launch = launch(root, root, &["python3", "app.py"]);
        launch.socket_dir = Some(root.join("tenement-data/run"));
        fs::create_dir_all(root.join("tenement-data/run")).unwrap();
        let config = bundle_config(&launch);
        let destinations: Vec<PathBuf> = config["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|mount| PathBuf::from(mount["destination"].as_str().unwrap()))
            .collect();
        for (index, destination) in destinations.iter().enumerate() {
            for later in &destinations[index + 1..] {
                assert!(
                    !destination.starts_with(later),
                    "{} is mounted before {}, which would hide it: {destinations:?}",
                    destination.display(),
                    later.display()
                );
            }
        }
        let tmp = destinations
            .iter()
            .position(|path| path == Path::new("/tmp"));
        let project = destinations.iter().position(|path| path == root);
        assert!(tmp.is_some() && project.is_some(), "{destinations:?}");
        let mounts = &config["mounts"];
        let options = |path: &Path| {
            mounts
                .as_array()
                .unwrap()
                .iter()
                .find(|mount| mount["destination"] == path.display().to_string())
                .map(|mount| mount["options"].clone())
        };
        assert_eq!(options(root), Some(json!(["rbind", "ro"])));
        assert_eq!(
            options(&root.join("tenement-data/notes/a")),
            Some(json!(["rbind", "rw"]))
        );
        assert_eq!(
            options(&root.join("tenement-data/run")),
            Some(json!(["rbind", "rw"]))
        );
    }
}
