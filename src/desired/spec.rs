//! The effective spec of one instance: its service template merged with the overrides of its
//! instance file, template variables bound (all but `{port}`, known after apply). Pure.
//!
//! A spec is immutable once made: its flat [`FieldMap`] is computed once, when the spec is
//! made, and reused by every plan (the server plans often; 10,000 instances are common).
//! The spec of a process no longer declared is read back in `left_over`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::checks::{Check, CheckTiming, TcpPort};
use crate::config::template::Bindings;
use crate::config::{
    Config, InstanceOverrides, Isolation, Listen, LogFiles, RestartPolicy, RunState,
    ServiceTemplate, StartMode, StopSignal, Template,
};
use crate::names::InstanceKey;

use std::borrow::Cow;

use super::fields::{FieldMap, FieldPath, FieldValue};

mod left_over;

/// Where an instance is declared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Declaration {
    /// Listed in `[instances]` of tenement.toml.
    pub in_table: bool,
    /// Its instance file, relative to the directory of tenement.toml (shared with the file
    /// as read).
    pub file: Option<Arc<Path>>,
}

impl Declaration {
    /// Where it is declared, for reasons in plans: the file wins over the table.
    pub fn describe(&self) -> String {
        match &self.file {
            Some(file) => file.display().to_string(),
            None => "[instances] in tenement.toml".to_string(),
        }
    }
}

/// The effective spec of one instance. What it has alike with the other instances of its
/// service (its command, checks, timeouts, limits of the service) is one [`Common`] they
/// share: read through it as if it were the spec's own (`spec.argv`, by `Deref`). With
/// 10,000 instances of a service that is one copy instead of 10,000 (about 600 bytes each).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    pub key: InstanceKey,
    pub declared: Declaration,
    pub state: RunState,
    pub idle_timeout: Duration,
    /// Whether it is started when declared or by its first request.
    pub start: StartMode,
    pub weight: u8,
    common: Arc<Common>,
    /// The flat view, computed once by [`effective_spec`]; shared with the observed state
    /// of the instance once applied.
    fields: Arc<FieldMap>,
}

/// The part of a spec most instances of a service have alike, templates bound: shared by
/// those whose part is equal ([`InstanceSpec::share_common`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    pub argv: Vec<Template>,
    pub workdir: Template,
    /// The directory of tenement.toml: what the command names in it is shown to a sandboxed
    /// tenant.
    pub config_dir: PathBuf,
    pub env: BTreeMap<String, Template>,
    pub listen: Listen,
    pub health: Option<String>,
    /// A TCP or command check (`health` is the HTTP one); a command's words are bound.
    pub check: Option<Check>,
    pub timing: CheckTiming,
    pub isolation: Isolation,
    pub startup_timeout: Duration,
    pub request_timeout: Duration,
    pub stop_signal: StopSignal,
    pub stop_timeout: Duration,
    pub restart: RestartPolicy,
    pub storage_persist: bool,
    pub pids_limit: Option<u64>,
    /// The limits below may be set per instance: an instance that sets one has a part of
    /// its own (they are rarely set per instance; kept here, they make a spec 48 bytes
    /// smaller, 96 bytes of heap instead of 160 with its count).
    pub memory_limit_mb: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub storage_quota_mb: Option<u64>,
    pub user: Option<String>,
    /// Where ten writes the output lines, besides its own capture.
    pub log_files: LogFiles,
    /// Lower orders stop first on shutdown and bulk stops.
    pub stop_order: i32,
}

impl std::ops::Deref for InstanceSpec {
    type Target = Common;

    fn deref(&self) -> &Common {
        &self.common
    }
}

/// The data directory of one instance.
pub(crate) fn instance_data_dir(data_dir: &Path, key: &InstanceKey) -> PathBuf {
    data_dir.join(key.service.as_str()).join(key.id.as_str())
}

/// What every spec made from one config shares, computed once per resolve.
pub struct SpecContext<'a> {
    config: &'a Config,
    data_dir_text: String,
}

impl<'a> SpecContext<'a> {
    pub fn new(config: &'a Config) -> Self {
        Self {
            config,
            data_dir_text: config.settings.data_dir.to_string_lossy().into_owned(),
        }
    }
}

/// Merges `service` with `overrides` for instance `key`.
pub fn effective_spec(
    context: &SpecContext<'_>,
    service: &ServiceTemplate,
    key: &InstanceKey,
    overrides: &InstanceOverrides,
    declared: Declaration,
) -> InstanceSpec {
    let config = context.config;
    let mut bindings = Bindings {
        name: key.service.as_str(),
        id: key.id.as_str(),
        data_dir: &context.data_dir_text,
        socket: "",
        port: None,
    };
    // Validation keeps `{port}` and `{socket}` out of `socket`, so the bound value is text.
    let socket = config.dir.join(service.socket.bind(&bindings).text());
    let socket_text = socket.to_string_lossy();
    bindings.socket = &socket_text;

    let mut env: BTreeMap<String, Template> = service
        .env
        .iter()
        .map(|(name, value)| (name.clone(), value.bind(&bindings)))
        .collect();
    for (name, value) in &overrides.env {
        env.insert(name.clone(), value.bind(&bindings));
    }
    let workdir = match &service.workdir {
        Some(workdir) => {
            let bound = workdir.bind(&bindings);
            match bound.as_literal() {
                Some(text) => Template::literal(&config.dir.join(text).to_string_lossy()),
                None => bound,
            }
        }
        None => Template::literal(&config.dir.to_string_lossy()),
    };
    let argv = service.argv.iter().map(|arg| arg.bind(&bindings)).collect();
    // Validation keeps `{port}` and `{socket}` out of log paths, so the bound value is text.
    let log_path = |path: &Option<Template>| {
        path.as_ref()
            .map(|path| normalize(&config.dir.join(path.bind(&bindings).text())))
    };
    let log_files = LogFiles {
        stdout: log_path(&service.log_files.stdout),
        stderr: log_path(&service.log_files.stderr),
        rotation: service.log_files.rotation,
    };
    let idle_timeout = overrides.idle_timeout.unwrap_or(service.idle_timeout);
    let common = Common {
        argv,
        workdir,
        config_dir: config.dir.clone(),
        env,
        listen: service.listen,
        health: service.health.clone(),
        check: service.check.as_ref().map(|check| match check {
            Check::Exec(words) => {
                Check::Exec(words.iter().map(|word| word.bind(&bindings)).collect())
            }
            other => other.clone(),
        }),
        timing: service.timing,
        isolation: service.isolation,
        startup_timeout: service.startup_timeout,
        request_timeout: service.request_timeout,
        stop_signal: service.stop_signal,
        stop_timeout: service.stop_timeout,
        restart: service.restart,
        storage_persist: service.storage_persist,
        pids_limit: service.pids_limit,
        memory_limit_mb: overrides.memory_limit_mb.or(service.memory_limit_mb),
        cpu_shares: overrides.cpu_shares.or(service.cpu_shares),
        storage_quota_mb: overrides.storage_quota_mb.or(service.storage_quota_mb),
        user: service.user.clone(),
        log_files,
        stop_order: service.stop_order,
    };
    let data_dir = instance_data_dir(&config.settings.data_dir, key);
    let mut spec = InstanceSpec {
        key: key.clone(),
        declared,
        state: overrides.state.unwrap_or(RunState::Running),
        idle_timeout,
        start: overrides
            .start
            .or(service.start)
            .unwrap_or_else(|| StartMode::default_for(idle_timeout, service.listen)),
        weight: overrides.weight.unwrap_or(service.weight),
        common: Arc::new(common),
        fields: Arc::default(),
    };
    spec.fields = Arc::new(compute_fields(&spec, &data_dir, &socket));
    spec
}

impl InstanceSpec {
    /// `{data_dir}/{service}/{id}`, created before spawn. Kept once, as the text of its
    /// field (a copy as a path besides took about 100 bytes an instance).
    pub fn data_dir(&self) -> &Path {
        self.path_field("data_dir")
    }

    /// The socket it listens on with `listen = "socket"`, as bound for it.
    pub fn socket(&self) -> &Path {
        self.path_field("socket")
    }

    /// A path every spec's fields have (see [`compute_fields`] and [`InstanceSpec::left_over`]).
    fn path_field(&self, name: &str) -> &Path {
        Path::new(
            self.fields
                .get(name)
                .and_then(FieldValue::as_text)
                .unwrap_or_default(),
        )
    }

    /// The command line as one shell-quoted string, `{port}` left in place.
    pub fn command_line(&self) -> String {
        let words: Vec<String> = self.argv.iter().map(Template::text).collect();
        shell_words::join(words)
    }

    /// The flat field map the planner diffs and the observed-state record stores.
    pub fn fields(&self) -> &FieldMap {
        &self.fields
    }

    /// Keeps of its fields only what differs from `shared`, the fields the other instances of
    /// its service have alike ([`FieldMap::sharing`]).
    pub(crate) fn share_fields(&mut self, shared: &Arc<[(FieldPath, FieldValue)]>) {
        self.fields = Arc::new(self.fields.sharing(shared));
    }

    /// The part it has alike with the other instances of its service.
    pub fn common(&self) -> &Arc<Common> {
        &self.common
    }

    /// Takes `common` for its own when equal (made for another instance of its service).
    pub(crate) fn share_common(&mut self, common: &Arc<Common>) {
        if *self.common == **common {
            self.common = Arc::clone(common);
        }
    }

    /// The same map, shared (what an applied instance records).
    pub fn shared_fields(&self) -> Arc<FieldMap> {
        Arc::clone(&self.fields)
    }
}

/// `tcp 6379`, `tcp port`, `exec pg_isready -q`.
pub(crate) fn describe_check(check: &Check) -> String {
    match check {
        Check::Tcp(TcpPort::Own) => "tcp port".into(),
        Check::Tcp(TcpPort::Fixed(port)) => format!("tcp {port}"),
        Check::Exec(words) => {
            let words: Vec<String> = words.iter().map(Template::text).collect();
            format!("exec {}", shell_words::join(words))
        }
    }
}

fn compute_fields(spec: &InstanceSpec, data_dir: &Path, socket: &Path) -> FieldMap {
    let text = |value: &str| FieldValue::Text(value.to_string());
    let path = |value: &Path| FieldValue::Text(value.to_string_lossy().into_owned());
    let mut fields: Vec<(FieldPath, FieldValue)> = Vec::with_capacity(24 + spec.env.len());
    let mut put = |name: &'static str, value: FieldValue| fields.push((Cow::Borrowed(name), value));
    put("command", FieldValue::Text(spec.command_line()));
    put("workdir", FieldValue::Text(spec.workdir.text()));
    put("data_dir", path(data_dir));
    put("isolation", text(spec.isolation.as_str()));
    put("listen", text(spec.listen.as_str()));
    put("socket", path(socket));
    if let Some(user) = &spec.user {
        put("user", text(user));
    }
    let limits = [
        ("memory_limit_mb", spec.memory_limit_mb),
        ("cpu_shares", spec.cpu_shares),
        ("pids_limit", spec.pids_limit),
        ("storage_quota_mb", spec.storage_quota_mb),
    ];
    for (name, value) in limits {
        if let Some(value) = value {
            put(name, FieldValue::Int(value));
        }
    }
    if let Some(health) = &spec.health {
        put("health", text(health));
    }
    if let Some(check) = &spec.check {
        put("health_check", FieldValue::Text(describe_check(check)));
    }
    let timing = &spec.timing;
    if let Some(interval) = timing.interval {
        put("health_interval", duration(interval));
    }
    put("health_timeout", duration(timing.timeout));
    put("health_retries", FieldValue::Int(u64::from(timing.retries)));
    put("health_start_period", duration(timing.start_period));
    put("start_seconds", duration(timing.start_seconds));
    put("weight", FieldValue::Int(u64::from(spec.weight)));
    put("idle_timeout", duration(spec.idle_timeout));
    // Only when on demand: a record written before the key existed (all eager) shows no
    // change for an eager instance.
    if spec.start == StartMode::OnDemand {
        put("start", text(spec.start.as_str()));
    }
    put("startup_timeout", duration(spec.startup_timeout));
    put("request_timeout", duration(spec.request_timeout));
    put("stop_signal", text(spec.stop_signal.as_str()));
    put("stop_timeout", duration(spec.stop_timeout));
    put("restart", text(spec.restart.as_str()));
    put("storage_persist", FieldValue::Bool(spec.storage_persist));
    // Only when a file is named: a record written before these keys existed shows no change.
    let logs = &spec.log_files;
    if !logs.is_empty() {
        if let Some(stdout) = &logs.stdout {
            put("stdout_log", path(stdout));
        }
        if let Some(stderr) = &logs.stderr {
            put("stderr_log", path(stderr));
        }
        put("log_max_bytes", FieldValue::Int(logs.rotation.max_bytes));
        put(
            "log_backups",
            FieldValue::Int(u64::from(logs.rotation.backups)),
        );
    }
    // Only when set: a record written before the key existed shows no change.
    if spec.stop_order != 0 {
        put(
            "stop_order",
            FieldValue::integer(i64::from(spec.stop_order)),
        );
    }
    for (name, value) in &spec.env {
        fields.push((
            Cow::Owned(format!("env.{name}")),
            FieldValue::Text(value.text()),
        ));
    }
    FieldMap::from_entries(fields)
}

/// `path` without its `.` components, so that `logs/a.log` and `./logs/a.log` are one file.
fn normalize(path: &Path) -> PathBuf {
    path.components().collect()
}

pub(super) fn text_path(path: &Path) -> FieldValue {
    FieldValue::Text(path.to_string_lossy().into_owned())
}

/// Whole seconds as an integer (as the original tenement writes them), anything finer as "1.5s".
pub(crate) fn duration(value: Duration) -> FieldValue {
    if value.subsec_nanos() == 0 {
        FieldValue::Int(value.as_secs())
    } else {
        FieldValue::Text(humantime::format_duration(value).to_string())
    }
}
