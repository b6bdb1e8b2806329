//! `ten export nomad`: one job per service, one group per instance (count 1, or 0 when
//! stopped) with one task running the same command and env (`raw_exec` by default: a plain
//! process like ten's; `exec` for Nomad's isolation), the data directory as the host volume
//! `ten-data`, checks from health with `check_restart`, `kill_signal`/`kill_timeout`,
//! resources from limits, and Consul services tagged for Traefik: `ID.SERVICE.DOMAIN` to the
//! instance, `SERVICE.DOMAIN` to every instance with a weight above 0. Secret-looking env
//! values are read from Nomad Variables by a template, never written in the job.
//!
//! The structs mirror the documented jobspec JSON of the HTTP API (`{"Job": {...}}`), kept
//! to the fields used; the HCL is written from the same values. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::checks::{Check, TcpPort};
use crate::config::{Isolation, Listen, RestartPolicy, RunState};
use crate::desired::{DesiredState, InstanceSpec};

pub use super::jobspec::{
    CheckRestart, ConsulService, GroupRestartPolicy, Job, JobFile, Network, Port, Resources,
    ServiceCheck, Task, TaskConfig, TaskGroup, TaskTemplate, VolumeMount, VolumeRequest,
};

use super::hcl::{Body, Value};
use super::shared::{
    PORT_MARK, by_service, instance_host, object_name, seconds, service_host, settings_warnings,
    sleeps, split_env, weight_warning,
};
use super::{Document, Export, ExportError, Warnings, check_domain};

/// Nomad's reference to the instance's port.
const PORT_VARIABLE: &str = "${NOMAD_PORT_http}";
/// The client's host volume that holds ten's data directory.
pub const HOST_VOLUME: &str = "ten-data";

/// What `ten export nomad` is asked.
#[derive(Debug, Clone)]
pub struct NomadOptions {
    pub datacenters: Vec<String>,
    pub driver: Driver,
    pub domain: String,
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    RawExec,
    Exec,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::RawExec => "raw_exec",
            Driver::Exec => "exec",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hcl,
    Json,
}

/// The export: one job per service, as HCL (`SERVICE.nomad.hcl`) or JSON
/// (`SERVICE.nomad.json`).
pub fn export(desired: &DesiredState, options: &NomadOptions) -> Result<Export, ExportError> {
    check_domain("domain", &options.domain)?;
    for datacenter in &options.datacenters {
        if datacenter.is_empty() || datacenter.contains(char::is_whitespace) {
            return Err(ExportError::InvalidOption {
                option: "datacenter",
                value: datacenter.clone(),
                reason: "is not a datacenter name (no spaces, not empty)".into(),
            });
        }
    }
    let mut warnings = Warnings::default();
    let mut documents = Vec::new();
    for (service, instances) in by_service(desired) {
        service_warnings(instances[0], options, &mut warnings);
        weight_warning(
            service,
            &instances,
            "Traefik balances evenly across the Consul service's instances; for weights, declare a weighted TraefikService",
            &mut warnings,
        );
        let job = JobFile {
            job: Job {
                id: service.to_string(),
                name: service.to_string(),
                kind: "service".into(),
                datacenters: options.datacenters.clone(),
                task_groups: instances
                    .iter()
                    .map(|spec| group(desired, spec, options, &mut warnings))
                    .collect(),
            },
        };
        let value = serde_json::to_value(&job).unwrap_or_default();
        let (file, text) = match options.format {
            Format::Json => {
                let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
                text.push('\n');
                (format!("{service}.nomad.json"), text)
            }
            Format::Hcl => (format!("{service}.nomad.hcl"), hcl_job(&job.job)),
        };
        documents.push(Document {
            file,
            kind: "Job".into(),
            name: service.to_string(),
            value,
            text,
        });
    }
    let routing = &desired.config.routing;
    if routing.default.is_some() || !routing.subdomain.is_empty() || !routing.path.is_empty() {
        warnings.add(
            "routing",
            "default, subdomain, path",
            "not exported: add Traefik router tags (Host, PathPrefix) to the services they name",
        );
    }
    settings_warnings(&desired.config, &mut warnings);
    Ok(Export {
        documents,
        warnings: warnings.into_vec(),
    })
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn group(
    desired: &DesiredState,
    spec: &InstanceSpec,
    options: &NomadOptions,
    warnings: &mut Warnings,
) -> TaskGroup {
    let service = &spec.key.service;
    let fill = |text: &str| text.replace(PORT_MARK, PORT_VARIABLE);
    let env = split_env(spec, fill);
    let mut vars = env.plain.clone();
    if spec.listen == Listen::Port {
        vars.insert("PORT".into(), PORT_VARIABLE.into());
    }
    let variable_path = format!("nomad/jobs/{service}/{}", spec.key.id);
    let templates = if env.secret.is_empty() {
        Vec::new()
    } else {
        let names: Vec<&str> = env.secret.keys().map(String::as_str).collect();
        warnings.add(
            spec.key.to_string(),
            "env",
            format!(
                "{}: read from the Nomad Variable {variable_path}, not written in the job; set with `nomad var put {variable_path} {}`",
                names.join(", "),
                names
                    .iter()
                    .map(|name| format!("{name}=..."))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        );
        let mut body = format!("{{{{ with nomadVar \"{variable_path}\" }}}}\n");
        for name in &names {
            body.push_str(&format!("{name}={{{{ .{name} }}}}\n"));
        }
        body.push_str("{{ end }}\n");
        vec![TaskTemplate {
            embedded_tmpl: body,
            dest_path: "secrets/env".into(),
            envvars: true,
        }]
    };
    let mut argv = spec.argv.iter().map(|word| word.fill_port(PORT_VARIABLE));
    let command = argv.next().unwrap_or_default();
    let resources = Resources {
        cpu: spec.cpu_shares,
        memory_mb: spec.memory_limit_mb,
    };
    let task = Task {
        name: "app".into(),
        driver: options.driver.as_str().into(),
        user: spec.user.clone(),
        config: TaskConfig {
            command,
            args: argv.collect(),
            work_dir: spec.workdir.fill_port(PORT_VARIABLE),
        },
        env: vars,
        templates,
        kill_signal: format!("SIG{}", spec.stop_signal.as_str()),
        kill_timeout: nanos(spec.stop_timeout),
        resources: (spec.cpu_shares.is_some() || spec.memory_limit_mb.is_some())
            .then_some(resources),
        volume_mounts: if options.driver == Driver::Exec {
            vec![VolumeMount {
                volume: "data".into(),
                destination: desired
                    .config
                    .settings
                    .data_dir
                    .to_string_lossy()
                    .into_owned(),
                read_only: false,
            }]
        } else {
            Vec::new()
        },
    };
    let checks = checks(desired, spec, warnings);
    if spec.listen != Listen::Port && !checks.is_empty() {
        warnings.add(
            format!("service.{service}"),
            "health_check",
            "a Nomad check belongs to a Consul service, which a task without a port does not register: not exported",
        );
    }
    let mut services = Vec::new();
    if spec.listen == Listen::Port {
        let name = object_name(&[service.as_str(), spec.key.id.as_str()]);
        services.push(consul_service(
            &name,
            &instance_host(spec, &options.domain),
            &checks,
        ));
        if spec.weight > 0 {
            let name = object_name(&[service.as_str()]);
            services.push(consul_service(
                &name,
                &service_host(service, &options.domain),
                &checks,
            ));
        }
    }
    TaskGroup {
        name: spec.key.id.to_string(),
        count: u32::from(spec.state == RunState::Running),
        restart_policy: (spec.restart == RestartPolicy::Never).then(|| GroupRestartPolicy {
            attempts: 0,
            mode: "fail".into(),
        }),
        networks: if spec.listen == Listen::Port {
            vec![Network {
                dynamic_ports: vec![Port {
                    label: "http".into(),
                }],
            }]
        } else {
            Vec::new()
        },
        services,
        volumes: BTreeMap::from([(
            "data".into(),
            VolumeRequest {
                name: "data".into(),
                kind: "host".into(),
                source: HOST_VOLUME.into(),
                read_only: false,
            },
        )]),
        tasks: vec![task],
    }
}

fn consul_service(name: &str, host: &str, checks: &[ServiceCheck]) -> ConsulService {
    ConsulService {
        name: name.to_string(),
        port_label: "http".into(),
        provider: "consul".into(),
        tags: vec![
            "traefik.enable=true".into(),
            format!("traefik.http.routers.{name}.rule=Host(`{host}`)"),
        ],
        checks: checks.to_vec(),
    }
}

/// ten's check as a Consul check; failures past `health_retries` restart the task, as in
/// ten.
fn checks(
    desired: &DesiredState,
    spec: &InstanceSpec,
    warnings: &mut Warnings,
) -> Vec<ServiceCheck> {
    let timing = &spec.timing;
    let interval = timing
        .interval
        .unwrap_or(desired.config.settings.health_check_interval);
    let check = |name: &str, kind: &str| ServiceCheck {
        name: name.to_string(),
        kind: kind.to_string(),
        path: None,
        command: None,
        args: Vec::new(),
        task_name: None,
        interval: nanos(Duration::from_secs(seconds(interval, 1))),
        timeout: nanos(Duration::from_secs(seconds(timing.timeout, 1))),
        check_restart: CheckRestart {
            limit: timing.retries.max(1),
            grace: nanos(spec.startup_timeout.max(timing.start_period)),
        },
    };
    if let Some(path) = &spec.health {
        return vec![ServiceCheck {
            path: Some(path.clone()),
            ..check("health", "http")
        }];
    }
    match &spec.check {
        Some(Check::Tcp(TcpPort::Own)) => vec![check("health", "tcp")],
        Some(Check::Tcp(TcpPort::Fixed(port))) => {
            warnings.add(
                format!("service.{}", spec.key.service),
                "health_check",
                format!("a Consul check of the group's service checks its own port, not {port}: not exported"),
            );
            Vec::new()
        }
        Some(Check::Exec(words)) => {
            let mut words = words.iter().map(|word| word.fill_port(PORT_VARIABLE));
            vec![ServiceCheck {
                command: words.next(),
                args: words.collect(),
                task_name: Some("app".into()),
                ..check("health", "script")
            }]
        }
        None => Vec::new(),
    }
}

fn service_warnings(spec: &InstanceSpec, options: &NomadOptions, warnings: &mut Warnings) {
    let subject = format!("service.{}", spec.key.service);
    let mut add = |key: &str, reason: &str| warnings.add(&subject, key, reason);
    match (spec.isolation, options.driver) {
        (Isolation::Sandbox, _) => add(
            "isolation",
            "Nomad has no gVisor driver of its own: the task runs with the driver chosen (--driver)",
        ),
        (Isolation::Namespace, Driver::RawExec) => add(
            "isolation",
            "raw_exec runs the task without isolation: pass --driver exec for namespaces and a chroot",
        ),
        _ => {}
    }
    if spec.listen == Listen::Socket {
        add(
            "listen",
            "Consul and Traefik reach a task on a port: no service is registered; make the app listen on $PORT",
        );
    }
    if sleeps(spec) {
        add(
            "idle_timeout, start",
            "a Nomad task does not sleep when idle: it runs from the start",
        );
    }
    if spec.pids_limit.is_some() {
        add("pids_limit", "a jobspec has no pids limit per task");
    }
    if spec.storage_quota_mb.is_some() {
        add(
            "storage_quota_mb",
            "a host volume has no quota per group: use a CSI volume of that size",
        );
    }
    if spec.restart == RestartPolicy::OnFailure {
        add(
            "restart",
            "a service job's task is restarted whatever its exit code",
        );
    }
    if !spec.log_files.is_empty() {
        add(
            "stdout_log, stderr_log",
            "Nomad keeps the output (nomad alloc logs); no file is written",
        );
    }
    if spec.request_timeout != Duration::from_secs(30) {
        add(
            "request_timeout",
            "a timeout of Traefik (serversTransport), not of the job",
        );
    }
    if spec.stop_order != 0 {
        add("stop_order", "Nomad stops groups in no order");
    }
}

/// The job as HCL, the same content as its JSON.
fn hcl_job(job: &Job) -> String {
    let text = |value: &str| Value::Text(value.to_string());
    let list = |items: &[String]| Value::List(items.iter().map(|item| text(item)).collect());
    let duration = |nanos: u64| {
        text(
            &humantime::format_duration(Duration::from_nanos(nanos))
                .to_string()
                .replace(' ', ""),
        )
    };
    let mut body = Body::default()
        .attr("datacenters", list(&job.datacenters))
        .text("type", &job.kind);
    for group in &job.task_groups {
        let mut g = Body::default().attr("count", Value::Int(u64::from(group.count)));
        if let Some(policy) = &group.restart_policy {
            g = g.block(
                "restart",
                &[],
                Body::default()
                    .attr("attempts", Value::Int(u64::from(policy.attempts)))
                    .text("mode", &policy.mode),
            );
        }
        for network in &group.networks {
            let mut n = Body::default();
            for port in &network.dynamic_ports {
                n = n.block("port", &[&port.label], Body::default());
            }
            g = g.block("network", &[], n);
        }
        for (name, volume) in &group.volumes {
            g = g.block(
                "volume",
                &[name],
                Body::default()
                    .text("type", &volume.kind)
                    .text("source", &volume.source)
                    .attr("read_only", Value::Bool(volume.read_only)),
            );
        }
        for service in &group.services {
            let mut s = Body::default()
                .text("name", &service.name)
                .text("port", &service.port_label)
                .text("provider", &service.provider)
                .attr("tags", list(&service.tags));
            for check in &service.checks {
                let mut c = Body::default()
                    .text("name", &check.name)
                    .text("type", &check.kind);
                if let Some(path) = &check.path {
                    c = c.text("path", path);
                }
                if let Some(command) = &check.command {
                    c = c.text("command", command).attr("args", list(&check.args));
                }
                if let Some(task) = &check.task_name {
                    c = c.text("task", task);
                }
                c = c
                    .attr("interval", duration(check.interval))
                    .attr("timeout", duration(check.timeout))
                    .block(
                        "check_restart",
                        &[],
                        Body::default()
                            .attr("limit", Value::Int(u64::from(check.check_restart.limit)))
                            .attr("grace", duration(check.check_restart.grace)),
                    );
                s = s.block("check", &[], c);
            }
            g = g.block("service", &[], s);
        }
        for task in &group.tasks {
            let mut t = Body::default().text("driver", &task.driver);
            if let Some(user) = &task.user {
                t = t.text("user", user);
            }
            t = t
                .text("kill_signal", &task.kill_signal)
                .attr("kill_timeout", duration(task.kill_timeout))
                .block(
                    "config",
                    &[],
                    Body::default()
                        .text("command", &task.config.command)
                        .attr("args", list(&task.config.args))
                        .text("work_dir", &task.config.work_dir),
                );
            let mut env = Body::default();
            for (name, value) in &task.env {
                env = env.text(name, value);
            }
            t = t.block("env", &[], env);
            for template in &task.templates {
                t = t.block(
                    "template",
                    &[],
                    Body::default()
                        .text("data", &template.embedded_tmpl)
                        .text("destination", &template.dest_path)
                        .attr("env", Value::Bool(template.envvars)),
                );
            }
            if let Some(resources) = &task.resources {
                let mut r = Body::default();
                if let Some(cpu) = resources.cpu {
                    r = r.attr("cpu", Value::Int(cpu));
                }
                if let Some(memory) = resources.memory_mb {
                    r = r.attr("memory", Value::Int(memory));
                }
                t = t.block("resources", &[], r);
            }
            for mount in &task.volume_mounts {
                t = t.block(
                    "volume_mount",
                    &[],
                    Body::default()
                        .text("volume", &mount.volume)
                        .text("destination", &mount.destination)
                        .attr("read_only", Value::Bool(mount.read_only)),
                );
            }
            g = g.block("task", &[&task.name], t);
        }
        body = body.block("group", &[&group.name], g);
    }
    Body::default()
        .block("job", &[&job.id], body)
        .write(PORT_VARIABLE, PORT_VARIABLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::shared::test_desired;

    fn options(driver: Driver) -> NomadOptions {
        NomadOptions {
            datacenters: vec!["dc1".into()],
            driver,
            domain: "example.com".into(),
            format: Format::Json,
        }
    }

    fn job(export: &Export) -> Job {
        serde_json::from_value::<JobFile>(export.documents[0].value.clone())
            .unwrap()
            .job
    }

    #[test]
    fn the_port_is_nomads_dynamic_port_in_args_and_env() {
        let (_dir, desired) = test_desired(
            "[service.web]\ncommand = \"./web --port {port}\"\nstop_signal = \"INT\"\nstop_timeout = 7\n[service.web.env]\nADDR = \"0.0.0.0:{port}\"\n",
            &[("web/a.toml", "")],
        );
        let job = job(&export(&desired, &options(Driver::RawExec)).unwrap());
        let task = &job.task_groups[0].tasks[0];
        assert_eq!(task.config.command, "./web");
        assert_eq!(task.config.args, ["--port", "${NOMAD_PORT_http}"]);
        assert_eq!(task.env["ADDR"], "0.0.0.0:${NOMAD_PORT_http}");
        assert_eq!(task.env["PORT"], "${NOMAD_PORT_http}");
        assert_eq!(task.kill_signal, "SIGINT");
        assert_eq!(task.kill_timeout, 7_000_000_000);
        assert!(task.volume_mounts.is_empty(), "raw_exec mounts nothing");
    }

    #[test]
    fn exec_mounts_the_data_volume_and_never_restarts_when_asked() {
        let (_dir, desired) = test_desired(
            "[service.jobs]\ncommand = \"./jobs\"\nlisten = \"none\"\nrestart = \"never\"\n",
            &[("jobs/q.toml", "")],
        );
        let job = job(&export(&desired, &options(Driver::Exec)).unwrap());
        let group = &job.task_groups[0];
        assert_eq!(
            group.restart_policy,
            Some(GroupRestartPolicy {
                attempts: 0,
                mode: "fail".into()
            })
        );
        assert!(group.services.is_empty() && group.networks.is_empty());
        let mount = &group.tasks[0].volume_mounts[0];
        assert_eq!(mount.volume, "data");
        assert_eq!(
            mount.destination,
            desired.config.settings.data_dir.to_string_lossy()
        );
        assert_eq!(group.volumes["data"].source, HOST_VOLUME);
    }
}
