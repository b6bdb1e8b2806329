//! From an effective spec and a port to the exact command to run: templates resolved, the
//! clean environment assembled. Pure.
//!
//! Tenants get `PATH`, `HOME`, `LANG` (ten's own, or defaults), their template's env, `PORT`
//! and `SOCKET_PATH` (not a worker, `listen = "none"`: it has neither) — never ten's other
//! variables, so tokens and secrets do not leak.

use std::path::PathBuf;

use crate::config::Listen;
use crate::desired::InstanceSpec;
use crate::runtime::Launch;
use crate::runtime::cgroup::Limits;
use crate::runtime::logs::CapturePaths;

/// The variables tenants inherit from ten's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseEnv {
    pub path: String,
    pub home: String,
    pub lang: String,
}

impl BaseEnv {
    /// `PATH`, `HOME` and `LANG` of this process, with defaults where unset.
    pub fn from_process() -> Self {
        let get =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        Self {
            path: get(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
            home: get("HOME", "/"),
            lang: get("LANG", "C.UTF-8"),
        }
    }
}

pub(crate) fn build_launch(
    spec: &InstanceSpec,
    port: u16,
    base: &BaseEnv,
    capture: &CapturePaths,
) -> Launch {
    let socket = spec.socket().to_string_lossy().into_owned();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), base.path.clone()),
        ("HOME".into(), base.home.clone()),
        ("LANG".into(), base.lang.clone()),
    ];
    for (name, value) in &spec.env {
        let value = value.resolve_port(port);
        match env.iter_mut().find(|(existing, _)| existing == name) {
            Some(entry) => entry.1 = value,
            None => env.push((name.clone(), value)),
        }
    }
    if spec.listen != Listen::None {
        env.push(("PORT".into(), port.to_string()));
        env.push(("SOCKET_PATH".into(), socket));
    }
    Launch {
        key: spec.key.clone(),
        argv: spec.argv.iter().map(|arg| arg.resolve_port(port)).collect(),
        workdir: PathBuf::from(spec.workdir.resolve_port(port)),
        config_dir: spec.config_dir.clone(),
        env,
        data_dir: spec.data_dir().to_path_buf(),
        stdout: capture.stdout.clone(),
        stderr: capture.stderr.clone(),
        port,
        spec: spec.shared_fields(),
        isolation: spec.isolation,
        limits: Limits {
            memory_mb: spec.memory_limit_mb,
            cpu_shares: spec.cpu_shares,
            pids: spec.pids_limit,
        },
        storage_quota_mb: spec.storage_quota_mb,
        user: spec.user.clone(),
        socket_dir: (spec.listen == Listen::Socket)
            .then(|| spec.socket().parent().map(PathBuf::from))
            .flatten(),
        uid: None,
        gid: None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse_config;
    use crate::desired::resolve;
    use crate::runtime::logs::LogHub;

    #[test]
    fn templates_get_the_port_and_the_env_is_clean() {
        let mut diagnostics = Vec::new();
        let text = "[service.api]\ncommand = \"./api --port {port} --id {id}\"\n[service.api.env]\nURL = \"http://127.0.0.1:{port}/\"\nPATH = \"/opt/bin\"\n[instances]\napi = [\"a\"]\n";
        let config = parse_config(
            Path::new("/srv/tenement.toml"),
            text.into(),
            &mut diagnostics,
        )
        .config
        .unwrap();
        let desired = resolve(config, &[], &mut diagnostics);
        let spec = desired.instances.values().next().unwrap();
        let base = BaseEnv {
            path: "/usr/bin".into(),
            home: "/root".into(),
            lang: "C.UTF-8".into(),
        };
        let capture = LogHub::new("/srv/tenement-data/.ten".into()).paths(&spec.key);
        let launch = build_launch(spec, 30001, &base, &capture);
        assert_eq!(launch.argv, ["./api", "--port", "30001", "--id", "a"]);
        assert_eq!(launch.workdir, PathBuf::from("/srv"));
        assert_eq!(
            launch.env,
            [
                ("PATH".to_string(), "/opt/bin".to_string()),
                ("HOME".into(), "/root".into()),
                ("LANG".into(), "C.UTF-8".into()),
                ("URL".into(), "http://127.0.0.1:30001/".into()),
                ("PORT".into(), "30001".into()),
                (
                    "SOCKET_PATH".into(),
                    "/srv/tenement-data/run/api-a.sock".into()
                ),
            ]
        );
        assert_eq!(
            launch.stdout,
            PathBuf::from("/srv/tenement-data/.ten/capture/api/a/stdout.raw")
        );
    }
}
