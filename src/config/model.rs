//! The validated configuration: what tenement.toml and instance files say once every key has
//! been checked and every default filled in. Values here are known to be valid; nothing
//! downstream re-validates them. Pure data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::names::{GroupName, InstanceKey, ServiceName};

use super::ip_range::IpRange;
use super::template::Template;

/// tenement.toml, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Absolute path of tenement.toml.
    pub path: PathBuf,
    /// Its directory; relative paths in the config are relative to it.
    pub dir: PathBuf,
    pub settings: Settings,
    pub services: BTreeMap<ServiceName, ServiceTemplate>,
    /// The `[instances]` table: `notes = ["alice", "bob"]`.
    pub instances: Vec<InstanceKey>,
    pub routing: Routing,
    /// `[group.NAME] services = [...]`: names for sets of services, for `ten stop group:NAME`
    /// and the like. Each service named is declared.
    pub groups: BTreeMap<GroupName, Vec<ServiceName>>,
}

/// `[settings]`. Defaults are the original tenement's (see `Settings::default`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Absolute.
    pub data_dir: PathBuf,
    pub health_check_interval: Duration,
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Absolute.
    pub instances_dir: PathBuf,
    pub auto_apply: bool,
    pub max_destroy_percent: u8,
    pub port_range: (u16, u16),
    pub keep_tenants_on_exit: bool,
    pub public_metrics: bool,
    /// Peers whose `X-Forwarded-*` headers ten believes (reverse proxies in front of it).
    /// Empty: none, every peer is the client.
    pub trusted_proxies: Vec<IpRange>,
    pub tls: TlsSettings,
    /// How much captured output is kept per instance (`log_retention`).
    pub log_retention: super::LogRetention,
    /// Above it, idle on-demand tenants are put to sleep, least recently used first.
    pub memory_target: Option<super::MemoryAmount>,
    /// A wake that would take the tenants past it puts others to sleep first, or is refused.
    pub memory_limit_total: Option<super::MemoryAmount>,
    /// What client connections may hold: header and keep-alive timeouts, how many.
    pub connections: super::ConnectionLimits,
}

pub const DEFAULT_DATA_DIR: &str = "tenement-data";
pub const DEFAULT_INSTANCES_DIR: &str = "instances";
pub const DEFAULT_PORT_RANGE: (u16, u16) = (30000, 40000);

impl Settings {
    /// The defaults, with relative paths resolved against `dir`.
    pub fn defaults(dir: &std::path::Path) -> Self {
        Self {
            data_dir: dir.join(DEFAULT_DATA_DIR),
            health_check_interval: Duration::from_secs(10),
            max_restarts: 3,
            restart_window: Duration::from_secs(300),
            backoff_base: Duration::from_millis(1000),
            backoff_max: Duration::from_millis(60000),
            instances_dir: dir.join(DEFAULT_INSTANCES_DIR),
            auto_apply: true,
            max_destroy_percent: 50,
            port_range: DEFAULT_PORT_RANGE,
            keep_tenants_on_exit: false,
            public_metrics: false,
            trusted_proxies: Vec::new(),
            tls: TlsSettings {
                enabled: false,
                acme_email: None,
                domain: None,
                acme_directory: None,
                cache_dir: None,
                staging: false,
                acme_root: None,
                https_port: 443,
                http_port: 80,
            },
            log_retention: super::LogRetention::default(),
            memory_target: None,
            memory_limit_total: None,
            connections: super::ConnectionLimits::default(),
        }
    }
}

/// `[settings.tls]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    pub enabled: bool,
    pub acme_email: Option<String>,
    pub domain: Option<String>,
    pub acme_directory: Option<String>,
    /// Absolute; `None` means `{data_dir}/acme`.
    pub cache_dir: Option<PathBuf>,
    /// Let's Encrypt's staging directory instead of its production one.
    pub staging: bool,
    /// A PEM file of certificates to trust, besides the public roots, for the ACME
    /// directory's own HTTPS (a private ACME server such as step-ca).
    pub acme_root: Option<PathBuf>,
    /// Where HTTPS is served (0: a free port).
    pub https_port: u16,
    /// Where plain HTTP redirects to HTTPS (0: a free port).
    pub http_port: u16,
}

/// `[service.NAME]`: a template for instances.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTemplate {
    pub name: ServiceName,
    /// argv: `command` shell-split, or `command` followed by `args`.
    pub argv: Vec<Template>,
    /// `None`: the directory of tenement.toml.
    pub workdir: Option<Template>,
    pub socket: Template,
    pub health: Option<String>,
    pub isolation: Isolation,
    /// Zero means never idle.
    pub idle_timeout: Duration,
    /// `None`: on demand when the instance's `idle_timeout` is above zero, else eager.
    pub start: Option<StartMode>,
    pub startup_timeout: Duration,
    pub storage_persist: bool,
    pub restart: RestartPolicy,
    pub memory_limit_mb: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub storage_quota_mb: Option<u64>,
    pub env: BTreeMap<String, Template>,
    pub request_timeout: Duration,
    pub stop_signal: StopSignal,
    pub stop_timeout: Duration,
    pub weight: u8,
    pub listen: Listen,
    pub pids_limit: Option<u64>,
    pub user: Option<String>,
    /// A TCP or command check (the HTTP one is `health`).
    pub check: Option<super::checks::Check>,
    pub timing: super::checks::CheckTiming,
    pub log_files: LogFileTemplates,
    /// On shutdown and bulk stops, lower orders stop first (all of one order before the
    /// next).
    pub stop_order: i32,
}

/// The default `socket` template.
pub const DEFAULT_SOCKET: &str = "{data_dir}/run/{name}-{id}.sock";

/// `stdout_log`, `stderr_log`, `log_max_bytes` and `log_backups` of a service: files ten
/// writes an instance's output lines to, besides its own capture.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogFileTemplates {
    /// Relative to the directory of tenement.toml.
    pub stdout: Option<Template>,
    pub stderr: Option<Template>,
    pub rotation: LogRotation,
}

/// When a log file is rotated, and how many rotated files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    /// A line that would take the file past this many bytes goes to a new file; 0: never
    /// rotated.
    pub max_bytes: u64,
    /// `file.log.1` (newest) to `file.log.N`; 0: the file is emptied instead.
    pub backups: u32,
}

pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_LOG_BACKUPS: u32 = 5;

impl Default for LogRotation {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_LOG_MAX_BYTES,
            backups: DEFAULT_LOG_BACKUPS,
        }
    }
}

/// The log files of one instance: absolute paths (the same one twice: both streams merged
/// into one file).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogFiles {
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    pub rotation: LogRotation,
}

impl LogFiles {
    /// No file is named: output goes only to ten's capture.
    pub fn is_empty(&self) -> bool {
        self.stdout.is_none() && self.stderr.is_none()
    }
}

/// What one instance file (`instances/<service>/<id>.toml`) sets. All optional.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InstanceOverrides {
    pub state: Option<RunState>,
    pub weight: Option<u8>,
    pub env: BTreeMap<String, Template>,
    pub idle_timeout: Option<Duration>,
    pub start: Option<StartMode>,
    pub memory_limit_mb: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub storage_quota_mb: Option<u64>,
}

/// What an instance file that sets nothing overrides.
static NO_OVERRIDES: InstanceOverrides = InstanceOverrides {
    state: None,
    weight: None,
    env: BTreeMap::new(),
    idle_timeout: None,
    start: None,
    memory_limit_mb: None,
    cpu_shares: None,
    storage_quota_mb: None,
};

/// A parsed instance file.
///
/// Most instance files set nothing (the file itself declares the tenant): their overrides
/// take no memory. The server keeps one per instance; with 10,000 that is 1 MB less.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceFile {
    pub key: InstanceKey,
    /// Relative to the directory of tenement.toml, as shown to users. Shared with the
    /// declaration of the spec made from it.
    pub path: Arc<Path>,
    /// `None`: it overrides nothing.
    overrides: Option<Box<InstanceOverrides>>,
}

impl InstanceFile {
    pub fn new(key: InstanceKey, path: PathBuf, overrides: InstanceOverrides) -> Self {
        let overrides = (overrides != NO_OVERRIDES).then(|| Box::new(overrides));
        Self {
            key,
            path: path.into(),
            overrides,
        }
    }

    /// What the file sets.
    pub fn overrides(&self) -> &InstanceOverrides {
        self.overrides.as_deref().unwrap_or(&NO_OVERRIDES)
    }
}

macro_rules! keyword_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const KEYWORDS: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn from_keyword(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// As its keyword.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::from_keyword(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("{text:?} is not one of {}", Self::KEYWORDS.join(", ")))
                })
            }
        }
    };
}

keyword_enum!(
    /// Declared state of an instance.
    RunState { Running = "running", Stopped = "stopped" }
);
keyword_enum!(
    /// When a declared instance is started: at once (`eager`), or by its first request
    /// (`on-demand`: it is declared asleep).
    StartMode { Eager = "eager", OnDemand = "on-demand" }
);
impl StartMode {
    /// Without `start`: an instance that sleeps when idle (`idle_timeout` above zero) also
    /// sleeps until its first request, so declaring many costs nothing until they are used;
    /// one that never sleeps, or a worker (no request wakes it), starts when declared.
    pub fn default_for(idle_timeout: Duration, listen: Listen) -> StartMode {
        if idle_timeout > Duration::ZERO && listen != Listen::None {
            StartMode::OnDemand
        } else {
            StartMode::Eager
        }
    }
}

keyword_enum!(
    /// How a tenant is isolated from the host and from other tenants.
    Isolation { Process = "process", Namespace = "namespace", Sandbox = "sandbox" }
);
keyword_enum!(
    /// When a tenant that exited is started again.
    RestartPolicy { Always = "always", OnFailure = "on-failure", Never = "never" }
);
keyword_enum!(
    /// Where the app listens and the proxy connects.
    Listen { Port = "port", Socket = "socket", None = "none" }
);
keyword_enum!(
    /// The signal that asks a tenant to stop.
    StopSignal {
        Term = "TERM",
        Int = "INT",
        Quit = "QUIT",
        Hup = "HUP",
        Kill = "KILL",
        Usr1 = "USR1",
        Usr2 = "USR2",
        Winch = "WINCH",
    }
);

impl StopSignal {
    /// Accepts `TERM` and `SIGTERM`, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        let upper = text.to_ascii_uppercase();
        Self::from_keyword(upper.strip_prefix("SIG").unwrap_or(&upper))
    }
}

/// `[routing]`: overrides of the subdomain routing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Routing {
    /// The root domain goes here instead of the dashboard.
    pub default: Option<RouteTarget>,
    /// `admin.DOMAIN` -> target.
    pub subdomain: BTreeMap<String, RouteTarget>,
    /// `DOMAIN/prefix/...` -> target.
    pub path: BTreeMap<String, RouteTarget>,
}

/// Where a routing rule sends requests: a whole service (weighted) or one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    Service(ServiceName),
    Instance(InstanceKey),
}

impl std::fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTarget::Service(service) => write!(f, "{service}"),
            RouteTarget::Instance(key) => write!(f, "{key}"),
        }
    }
}

impl RouteTarget {
    pub fn service(&self) -> &ServiceName {
        match self {
            RouteTarget::Service(service) => service,
            RouteTarget::Instance(key) => &key.service,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_file_keeps_only_overrides_that_set_something() {
        let key = InstanceKey::parse("notes:alice").unwrap();
        let path = PathBuf::from("instances/notes/alice.toml");
        let empty = InstanceFile::new(key.clone(), path.clone(), InstanceOverrides::default());
        assert!(empty.overrides.is_none());
        assert_eq!(empty.overrides(), &InstanceOverrides::default());
        let weighted = InstanceOverrides {
            weight: Some(3),
            ..InstanceOverrides::default()
        };
        let file = InstanceFile::new(key, path, weighted.clone());
        assert_eq!(file.overrides(), &weighted);
        assert_ne!(file, empty);
    }
}
