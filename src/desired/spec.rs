//! The effective spec of one instance: its service template merged with the overrides of its
//! instance file, template variables bound (all but `{port}`, known after apply). Pure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::template::Bindings;
use crate::config::{
    Config, InstanceOverrides, Isolation, Listen, RestartPolicy, RunState, ServiceTemplate,
    StopSignal, Template,
};
use crate::names::InstanceKey;

use super::fields::{FieldMap, FieldValue};

/// Where an instance is declared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Declaration {
    /// Listed in `[instances]` of tenement.toml.
    pub in_table: bool,
    /// Its instance file, relative to the directory of tenement.toml.
    pub file: Option<PathBuf>,
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

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    pub key: InstanceKey,
    pub declared: Declaration,
    pub state: RunState,
    pub argv: Vec<Template>,
    pub workdir: Template,
    /// `{data_dir}/{service}/{id}`, created before spawn.
    pub data_dir: PathBuf,
    pub env: BTreeMap<String, Template>,
    pub socket: PathBuf,
    pub listen: Listen,
    pub health: Option<String>,
    pub isolation: Isolation,
    pub idle_timeout: Duration,
    pub startup_timeout: Duration,
    pub request_timeout: Duration,
    pub stop_signal: StopSignal,
    pub stop_timeout: Duration,
    pub restart: RestartPolicy,
    pub storage_persist: bool,
    pub memory_limit_mb: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<u64>,
    pub storage_quota_mb: Option<u64>,
    pub user: Option<String>,
    pub weight: u8,
}

/// The data directory of one instance.
pub fn instance_data_dir(data_dir: &Path, key: &InstanceKey) -> PathBuf {
    data_dir.join(key.service.as_str()).join(key.id.as_str())
}

/// Merges `service` with `overrides` for instance `key`.
pub fn effective_spec(
    config: &Config,
    service: &ServiceTemplate,
    key: &InstanceKey,
    overrides: &InstanceOverrides,
    declared: Declaration,
) -> InstanceSpec {
    let data_dir_text = config.settings.data_dir.to_string_lossy();
    let mut bindings = Bindings {
        name: key.service.as_str(),
        id: key.id.as_str(),
        data_dir: &data_dir_text,
        socket: "",
        port: None,
    };
    // Validation keeps `{port}` and `{socket}` out of `socket`, so the bound value is text.
    let bound_socket = service.socket.bind(&bindings);
    let socket_text = bound_socket
        .as_literal()
        .map_or_else(|| bound_socket.to_string(), str::to_string);
    let socket = config.dir.join(&socket_text);
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
    InstanceSpec {
        key: key.clone(),
        declared,
        state: overrides.state.unwrap_or(RunState::Running),
        argv: service.argv.iter().map(|arg| arg.bind(&bindings)).collect(),
        workdir,
        data_dir: instance_data_dir(&config.settings.data_dir, key),
        env,
        socket: socket.clone(),
        listen: service.listen,
        health: service.health.clone(),
        isolation: service.isolation,
        idle_timeout: overrides.idle_timeout.unwrap_or(service.idle_timeout),
        startup_timeout: service.startup_timeout,
        request_timeout: service.request_timeout,
        stop_signal: service.stop_signal,
        stop_timeout: service.stop_timeout,
        restart: service.restart,
        storage_persist: service.storage_persist,
        memory_limit_mb: overrides.memory_limit_mb.or(service.memory_limit_mb),
        cpu_shares: overrides.cpu_shares.or(service.cpu_shares),
        pids_limit: service.pids_limit,
        storage_quota_mb: overrides.storage_quota_mb.or(service.storage_quota_mb),
        user: service.user.clone(),
        weight: overrides.weight.unwrap_or(service.weight),
    }
}

impl InstanceSpec {
    /// The command line as one shell-quoted string, `{port}` left in place.
    pub fn command_line(&self) -> String {
        let words: Vec<String> = self.argv.iter().map(ToString::to_string).collect();
        shell_words::join(words)
    }

    /// The flat field map the planner diffs and the observed-state record stores.
    pub fn fields(&self) -> FieldMap {
        let mut fields = FieldMap::new();
        let mut put = |path: &str, value: FieldValue| {
            fields.insert(path.to_string(), value);
        };
        put("command", FieldValue::Text(self.command_line()));
        put("workdir", FieldValue::Text(self.workdir.to_string()));
        put("data_dir", text_path(&self.data_dir));
        for (name, value) in &self.env {
            put(&format!("env.{name}"), FieldValue::Text(value.to_string()));
        }
        put("isolation", FieldValue::Text(self.isolation.to_string()));
        put("listen", FieldValue::Text(self.listen.to_string()));
        put("socket", text_path(&self.socket));
        if let Some(user) = &self.user {
            put("user", FieldValue::Text(user.clone()));
        }
        let limits = [
            ("memory_limit_mb", self.memory_limit_mb),
            ("cpu_shares", self.cpu_shares),
            ("pids_limit", self.pids_limit),
            ("storage_quota_mb", self.storage_quota_mb),
        ];
        for (path, value) in limits {
            if let Some(value) = value {
                put(path, FieldValue::Int(value));
            }
        }
        if let Some(health) = &self.health {
            put("health", FieldValue::Text(health.clone()));
        }
        put("weight", FieldValue::Int(u64::from(self.weight)));
        put("idle_timeout", duration(self.idle_timeout));
        put("startup_timeout", duration(self.startup_timeout));
        put("request_timeout", duration(self.request_timeout));
        put(
            "stop_signal",
            FieldValue::Text(self.stop_signal.to_string()),
        );
        put("stop_timeout", duration(self.stop_timeout));
        put("restart", FieldValue::Text(self.restart.to_string()));
        put("storage_persist", FieldValue::Bool(self.storage_persist));
        fields
    }
}

fn text_path(path: &Path) -> FieldValue {
    FieldValue::Text(path.to_string_lossy().into_owned())
}

/// Whole seconds as an integer (as the seeds write them), anything finer as "1.5s".
pub fn duration(value: Duration) -> FieldValue {
    if value.subsec_nanos() == 0 {
        FieldValue::Int(value.as_secs())
    } else {
        FieldValue::Text(humantime::format_duration(value).to_string())
    }
}

/// The settings and routing of tenement.toml as fields: applied in place, shown in plans
/// when they change.
pub fn settings_fields(config: &Config) -> FieldMap {
    let settings = &config.settings;
    let mut fields = FieldMap::new();
    let mut put = |path: &str, value: FieldValue| {
        fields.insert(path.to_string(), value);
    };
    put("data_dir", text_path(&settings.data_dir));
    put("instances_dir", text_path(&settings.instances_dir));
    put(
        "health_check_interval",
        duration(settings.health_check_interval),
    );
    put(
        "max_restarts",
        FieldValue::Int(u64::from(settings.max_restarts)),
    );
    put("restart_window", duration(settings.restart_window));
    put(
        "backoff_base_ms",
        FieldValue::Int(settings.backoff_base.as_millis() as u64),
    );
    put(
        "backoff_max_ms",
        FieldValue::Int(settings.backoff_max.as_millis() as u64),
    );
    put("auto_apply", FieldValue::Bool(settings.auto_apply));
    put(
        "max_destroy_percent",
        FieldValue::Int(u64::from(settings.max_destroy_percent)),
    );
    let (low, high) = settings.port_range;
    put("port_range", FieldValue::Text(format!("{low}-{high}")));
    put(
        "keep_tenants_on_exit",
        FieldValue::Bool(settings.keep_tenants_on_exit),
    );
    put("public_metrics", FieldValue::Bool(settings.public_metrics));
    let tls = &settings.tls;
    put("tls.enabled", FieldValue::Bool(tls.enabled));
    let optional = [
        ("tls.acme_email", tls.acme_email.clone()),
        ("tls.domain", tls.domain.clone()),
        ("tls.acme_directory", tls.acme_directory.clone()),
        (
            "tls.cache_dir",
            tls.cache_dir
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        ),
        (
            "routing.default",
            config.routing.default.as_ref().map(ToString::to_string),
        ),
    ];
    for (path, value) in optional {
        if let Some(value) = value {
            put(path, FieldValue::Text(value));
        }
    }
    for (label, target) in &config.routing.subdomain {
        put(
            &format!("routing.subdomain.{label}"),
            FieldValue::Text(target.to_string()),
        );
    }
    for (prefix, target) in &config.routing.path {
        put(
            &format!("routing.path.{prefix}"),
            FieldValue::Text(target.to_string()),
        );
    }
    fields
}
