//! The route table: an immutable snapshot, rebuilt by the reconciler when instances or
//! routing change and swapped atomically; requests read it without a lock.
//!
//! `ID.SERVICE.DOMAIN` goes to an instance; `SERVICE.DOMAIN` is spread over the service's
//! instances by weight; `DOMAIN` serves ten's own pages (`/health`, `/api/`, `/metrics`, the
//! dashboard)
//! unless `[routing]` says otherwise: `default` sends the root domain to a target,
//! `[routing.subdomain]` a label, `[routing.path]` a path prefix (path routes win over ten's
//! own pages on the root domain; ten's API is always reachable by IP address or `localhost`).
//! Only declared instances are routable.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

// Keys are declared names, never inserted by a request: a fast hash needs no flood resistance.
use foldhash::{HashMap, HashMapExt};

use crate::config::{ConnectionLimits, IpRange, RouteTarget, RunState};
use crate::desired::{DesiredState, InstanceSpec};
use crate::metrics::ServiceCounters;
use crate::names::InstanceKey;
use crate::supervisor::gate::{Gate, Lease};

/// What the proxy knows of one declared instance.
///
/// Its key, state and timeouts are its spec's, read through it (`route.key`,
/// `route.request_timeout`, by `Deref`): the spec is the desired state's own, not a copy.
pub(crate) struct InstanceRoute {
    spec: Arc<InstanceSpec>,
    /// `None` while the instance was never applied (no process was ever asked for).
    pub gate: Option<Arc<Gate>>,
    /// Its service's counters (`crate::metrics::services`): a request counts there.
    pub counters: Arc<ServiceCounters>,
}

impl std::ops::Deref for InstanceRoute {
    type Target = InstanceSpec;

    fn deref(&self) -> &InstanceSpec {
        &self.spec
    }
}

/// The instances of a service that take traffic, by weight.
pub(crate) struct ServiceRoute {
    pub name: String,
    /// The service's counters.
    pub counters: Arc<ServiceCounters>,
    /// (cumulative weight, instance), instances with weight 0 left out.
    members: Vec<(u64, Arc<InstanceRoute>)>,
    picks: AtomicU64,
}

impl ServiceRoute {
    /// An instance picked in proportion to its weight; `None` when none takes traffic.
    pub(crate) fn pick(&self) -> Option<&Arc<InstanceRoute>> {
        let total = self.members.last()?.0;
        // A counter spread by a multiplicative hash: proportional, lock-free, no RNG state.
        let n = self.picks.fetch_add(1, Ordering::Relaxed);
        let point = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) % total;
        let index = self
            .members
            .partition_point(|(cumulative, _)| *cumulative <= point);
        self.members.get(index).map(|(_, route)| route)
    }

    /// An instance other than `except` that takes traffic now, with a lease on its backend:
    /// a pick by weight if it has a backend, else the first member that does. For a request
    /// whose instance failed before answering, or is restarting.
    pub(crate) fn another(
        &self,
        except: &Arc<InstanceRoute>,
    ) -> Option<(Arc<InstanceRoute>, Lease)> {
        let usable = |route: &Arc<InstanceRoute>| {
            if Arc::ptr_eq(route, except) || route.state == RunState::Stopped {
                return None;
            }
            let lease = route.gate.as_ref()?.lease()?;
            Some((Arc::clone(route), lease))
        };
        self.pick()
            .and_then(usable)
            .or_else(|| self.members.iter().find_map(|(_, route)| usable(route)))
    }
}

/// Where a request goes.
pub(crate) enum Resolved<'a> {
    /// ten's own pages and API.
    Own,
    Instance(&'a Arc<InstanceRoute>),
    Service(&'a Arc<ServiceRoute>),
    /// Nothing is declared there; the text says what was asked for.
    NotFound(String),
    /// A worker's name: declared, but it answers no HTTP; the text says so.
    NoHttp(String),
}

/// A `[routing]` target with the key it is looked up by (a service's name, or an instance's
/// `ID.SERVICE`), made once with the table rather than at every request.
struct Target {
    target: RouteTarget,
    key: Box<str>,
}

impl Target {
    fn of(target: &RouteTarget) -> Target {
        let key = match target {
            RouteTarget::Service(service) => service.as_str().into(),
            RouteTarget::Instance(key) => instance_key(key),
        };
        Target {
            target: target.clone(),
            key,
        }
    }
}

/// What an instance is looked up by in [`RouteTable`]: `ID.SERVICE`, its hostname's labels.
fn instance_key(key: &InstanceKey) -> Box<str> {
    format!("{}.{}", key.id, key.service).into_boxed_str()
}

#[derive(Default)]
pub(crate) struct RouteTable {
    domain: String,
    /// By `ID.SERVICE`.
    instances: HashMap<Box<str>, Arc<InstanceRoute>>,
    services: HashMap<String, Arc<ServiceRoute>>,
    subdomains: HashMap<String, Target>,
    /// Longest prefix first.
    paths: Vec<(String, Target)>,
    default: Option<Target>,
    /// `settings.public_metrics`: `/metrics` without a token.
    public_metrics: bool,
    /// Services whose instances answer no HTTP (`listen = "none"`): their names, and
    /// their instances' `ID.SERVICE`, are not found, with the reason.
    workers: HashMap<String, ()>,
    /// `settings.trusted_proxies`: peers whose `X-Forwarded-*` headers are believed.
    trusted_proxies: Vec<IpRange>,
    /// What a client connection may hold (`header_timeout`, `max_connections`, ...).
    connections: ConnectionLimits,
}

impl RouteTable {
    /// The table for `desired`; `gate` gives the gate of an applied instance. The declared
    /// services become those of `crate::metrics::services`, whose counters the routes hold.
    pub(crate) fn build(
        domain: &str,
        desired: &DesiredState,
        gate: impl Fn(&InstanceKey) -> Option<Arc<Gate>>,
    ) -> RouteTable {
        let registry = crate::metrics::services();
        registry.declare(desired.config.services.keys().map(|name| name.as_str()));
        let counters = |service: &str| registry.get(service).unwrap_or_default();
        let mut instances = HashMap::with_capacity(desired.instances.len());
        let mut services: HashMap<String, ServiceRoute> = HashMap::new();
        let mut workers = HashMap::new();
        for (key, spec) in &desired.instances {
            if spec.listen == crate::config::Listen::None {
                workers.insert(key.service.to_string(), ());
                continue;
            }
            let route = Arc::new(InstanceRoute {
                spec: Arc::clone(spec),
                gate: gate(key),
                counters: counters(key.service.as_str()),
            });
            let service = services
                .entry(key.service.to_string())
                .or_insert_with(|| ServiceRoute {
                    name: key.service.to_string(),
                    counters: Arc::clone(&route.counters),
                    members: Vec::new(),
                    picks: AtomicU64::new(0),
                });
            if spec.weight > 0 {
                let total = service
                    .members
                    .last()
                    .map_or(0, |(cumulative, _)| *cumulative);
                service
                    .members
                    .push((total + u64::from(spec.weight), Arc::clone(&route)));
            }
            instances.insert(instance_key(key), route);
        }
        for (name, service) in &desired.config.services {
            if service.listen == crate::config::Listen::None {
                workers.insert(name.to_string(), ());
                continue;
            }
            services
                .entry(name.to_string())
                .or_insert_with(|| ServiceRoute {
                    name: name.to_string(),
                    counters: counters(name.as_str()),
                    members: Vec::new(),
                    picks: AtomicU64::new(0),
                });
        }
        let routing = &desired.config.routing;
        let mut paths: Vec<(String, Target)> = routing
            .path
            .iter()
            .map(|(p, t)| (p.clone(), Target::of(t)))
            .collect();
        paths.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        RouteTable {
            domain: domain.to_ascii_lowercase(),
            instances,
            services: services
                .into_iter()
                .map(|(name, mut service)| {
                    // Grown by doubling: up to half its places unused (with 10,000
                    // members, 130 KB).
                    service.members.shrink_to_fit();
                    (name, Arc::new(service))
                })
                .collect(),
            subdomains: routing
                .subdomain
                .iter()
                .map(|(label, target)| (label.clone(), Target::of(target)))
                .collect(),
            paths,
            default: routing.default.as_ref().map(Target::of),
            public_metrics: desired.config.settings.public_metrics,
            workers,
            trusted_proxies: desired.config.settings.trusted_proxies.clone(),
            connections: desired.config.settings.connections,
        }
    }

    /// What a client connection may hold, per the settings.
    pub(crate) fn connection_limits(&self) -> ConnectionLimits {
        self.connections
    }

    /// Whether `/metrics` is served without a token (`settings.public_metrics`).
    pub(crate) fn public_metrics(&self) -> bool {
        self.public_metrics
    }

    /// The reverse proxies whose `X-Forwarded-*` headers are believed
    /// (`settings.trusted_proxies`).
    pub(crate) fn trusted_proxies(&self) -> &[IpRange] {
        &self.trusted_proxies
    }

    fn target(&self, target: &Target) -> Resolved<'_> {
        match &target.target {
            RouteTarget::Service(service) => match self.services.get(&*target.key) {
                Some(route) => Resolved::Service(route),
                None => Resolved::NotFound(format!("service {service}")),
            },
            RouteTarget::Instance(key) => match self.instances.get(&*target.key) {
                Some(route) => Resolved::Instance(route),
                None => Resolved::NotFound(key.to_string()),
            },
        }
    }

    /// Where a request for `host` (lowercase, no port) and `path` goes.
    pub(crate) fn resolve(&self, host: &str, path: &str) -> Resolved<'_> {
        if host == self.domain {
            if let Some((_, target)) = self
                .paths
                .iter()
                .find(|(prefix, _)| path_matches(path, prefix))
            {
                return self.target(target);
            }
            if is_own_path(path) {
                return Resolved::Own;
            }
            return match &self.default {
                Some(target) => self.target(target),
                None => Resolved::Own,
            };
        }
        if host.is_empty() || host == "localhost" || is_ip_address(host) {
            return Resolved::Own;
        }
        let Some(sub) = host
            .strip_suffix(&self.domain)
            .and_then(|rest| rest.strip_suffix('.'))
        else {
            return Resolved::NotFound(format!("{host} (not under {})", self.domain));
        };
        if let Some(target) = self.subdomains.get(sub) {
            return self.target(target);
        }
        // Counted as bytes (no char search): this runs for every request.
        let found = self.tenant(sub, host);
        match &found {
            Resolved::NotFound(_) if !self.workers.is_empty() => self.worker(sub).unwrap_or(found),
            _ => found,
        }
    }

    /// A worker's name, not found for the reason that it answers no HTTP.
    fn worker(&self, sub: &str) -> Option<Resolved<'_>> {
        let service = sub.rsplit('.').next()?;
        self.workers.contains_key(service).then(|| {
            Resolved::NoHttp(format!(
                "{sub} answers no HTTP: service {service} runs workers (listen = \"none\")"
            ))
        })
    }

    /// `SERVICE` or `ID.SERVICE` under the domain.
    fn tenant(&self, sub: &str, host: &str) -> Resolved<'_> {
        match sub.bytes().filter(|&byte| byte == b'.').count() {
            0 => match self.services.get(sub) {
                Some(route) => Resolved::Service(route),
                None => Resolved::NotFound(format!("service {sub}")),
            },
            1 => match self.instances.get(sub) {
                Some(route) => Resolved::Instance(route),
                None => Resolved::NotFound(format!(
                    "instance {}",
                    sub.split_once('.')
                        .map_or_else(String::new, |(id, svc)| format!("{svc}:{id}"))
                )),
            },
            _ => Resolved::NotFound(host.to_string()),
        }
    }
}

/// Whether `host` is an IP address. Tenant hosts end in a letter and have no `:`, so they are
/// told apart without a parse.
fn is_ip_address(host: &str) -> bool {
    let bytes = host.as_bytes();
    (bytes.last().is_some_and(u8::is_ascii_digit) || bytes.contains(&b':'))
        && host.parse::<std::net::IpAddr>().is_ok()
}

/// `/api` matches `/api`, `/api/x` and `/api?x`, not `/apix`.
fn path_matches(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path.strip_prefix(prefix).is_some_and(|rest| {
        rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') || prefix.is_empty()
    })
}

/// ten's own pages on the root domain.
fn is_own_path(path: &str) -> bool {
    path == "/health" || path == "/metrics" || path_matches(path, "/api")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse_config;
    use crate::desired::resolve;

    fn table(extra: &str) -> RouteTable {
        let text = format!(
            "[service.notes]\ncommand = \"x\"\n[service.api]\ncommand = \"y\"\n[instances]\nnotes = [\"alice\", \"bob\"]\napi = [\"v1\"]\n{extra}"
        );
        let mut diagnostics = Vec::new();
        let config = parse_config(Path::new("/srv/tenement.toml"), text, &mut diagnostics)
            .config
            .unwrap_or_else(|| panic!("{diagnostics:?}"));
        let desired = resolve(config, &[], &mut diagnostics);
        RouteTable::build("example.com", &desired, |_| None)
    }

    /// The table of a config whose [settings] say `settings`.
    fn table_with_settings(settings: &str) -> RouteTable {
        let text = format!("[settings]\n{settings}\n[service.notes]\ncommand = \"x\"\n");
        let mut diagnostics = Vec::new();
        let config = parse_config(Path::new("/srv/tenement.toml"), text, &mut diagnostics)
            .config
            .unwrap_or_else(|| panic!("{diagnostics:?}"));
        let desired = resolve(config, &[], &mut diagnostics);
        RouteTable::build("example.com", &desired, |_| None)
    }

    #[test]
    fn public_metrics_comes_from_the_settings() {
        assert!(!table("").public_metrics());
        assert!(table_with_settings("public_metrics = true").public_metrics());
    }

    #[test]
    fn trusted_proxies_come_from_the_settings() {
        assert!(table("").trusted_proxies().is_empty());
        let table = table_with_settings("trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]");
        let shown: Vec<String> = table
            .trusted_proxies()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["127.0.0.1", "10.0.0.0/8"]);
    }

    fn describe(resolved: Resolved<'_>) -> String {
        match resolved {
            Resolved::Own => "own".into(),
            Resolved::Instance(route) => route.key.to_string(),
            Resolved::Service(route) => format!("service {}", route.name),
            Resolved::NotFound(what) => format!("404 {what}"),
            Resolved::NoHttp(what) => format!("404 no HTTP: {what}"),
        }
    }

    #[test]
    fn hosts_route_by_subdomain() {
        let table = table("");
        let cases = [
            ("alice.notes.example.com", "/", "notes:alice"),
            ("notes.example.com", "/", "service notes"),
            ("example.com", "/", "own"),
            ("example.com", "/api/instances", "own"),
            ("127.0.0.1", "/anything", "own"),
            ("::1", "/anything", "own"),
            ("fe80::a", "/", "own"),
            ("10.0.0.256", "/", "404 10.0.0.256 (not under example.com)"),
            ("carol.notes.example.com", "/", "404 instance notes:carol"),
            ("zed.example.com", "/", "404 service zed"),
            ("a.b.notes.example.com", "/", "404 a.b.notes.example.com"),
            ("other.org", "/", "404 other.org (not under example.com)"),
            (
                "alice.notes.example.com.evil.org",
                "/",
                "404 alice.notes.example.com.evil.org (not under example.com)",
            ),
        ];
        for (host, path, expected) in cases {
            assert_eq!(
                describe(table.resolve(host, path)),
                expected,
                "{host}{path}"
            );
        }
    }

    #[test]
    fn routing_overrides() {
        let table = table(
            "[routing]\ndefault = \"notes\"\n[routing.subdomain]\n\"admin\" = \"api:v1\"\n[routing.path]\n\"/api\" = \"api\"\n\"/api/v2\" = \"notes:bob\"\n",
        );
        let cases = [
            ("example.com", "/", "service notes"),
            ("example.com", "/health", "own"),
            ("example.com", "/metrics", "own"),
            ("example.com", "/metricsx", "service notes"),
            ("example.com", "/api/users", "service api"),
            ("example.com", "/api/v2/x", "notes:bob"),
            ("example.com", "/apix", "service notes"),
            ("admin.example.com", "/", "api:v1"),
            ("127.0.0.1", "/api/instances", "own"),
        ];
        for (host, path, expected) in cases {
            assert_eq!(
                describe(table.resolve(host, path)),
                expected,
                "{host}{path}"
            );
        }
    }

    #[test]
    fn services_spread_requests_by_weight() {
        let text = "[service.api]\ncommand = \"y\"\n";
        let mut diagnostics = Vec::new();
        let config = parse_config(
            Path::new("/srv/tenement.toml"),
            text.into(),
            &mut diagnostics,
        )
        .config
        .unwrap();
        let files: Vec<crate::config::InstanceFile> = [("a", 75u8), ("b", 25), ("c", 0)]
            .iter()
            .map(|(id, weight)| {
                crate::config::InstanceFile::new(
                    InstanceKey::parse(&format!("api:{id}")).unwrap(),
                    format!("instances/api/{id}.toml").into(),
                    crate::config::InstanceOverrides {
                        weight: Some(*weight),
                        ..Default::default()
                    },
                )
            })
            .collect();
        let desired = resolve(config, &files, &mut diagnostics);
        let table = RouteTable::build("example.com", &desired, |_| None);
        let Resolved::Service(service) = table.resolve("api.example.com", "/") else {
            panic!()
        };
        let mut counts: HashMap<String, u32> = HashMap::new();
        for _ in 0..10_000 {
            *counts
                .entry(service.pick().unwrap().key.to_string())
                .or_default() += 1;
        }
        let share = |id: &str| f64::from(counts.get(id).copied().unwrap_or(0)) / 10_000.0;
        assert!((share("api:a") - 0.75).abs() < 0.02, "{counts:?}");
        assert!((share("api:b") - 0.25).abs() < 0.02, "{counts:?}");
        assert_eq!(share("api:c"), 0.0, "weight 0 takes no traffic");
    }

    #[test]
    fn another_instance_is_one_that_takes_traffic_now() {
        use crate::supervisor::gate::{Backend, Owner, Target};
        use crate::supervisor::messages::InstanceStatus;
        let text = "[service.api]\ncommand = \"y\"\n[instances]\napi = [\"a\", \"b\", \"c\"]\n";
        let mut diagnostics = Vec::new();
        let config = parse_config(
            Path::new("/srv/tenement.toml"),
            text.into(),
            &mut diagnostics,
        )
        .config
        .unwrap();
        let desired = resolve(config, &[], &mut diagnostics);
        let gates = std::cell::RefCell::new(HashMap::new());
        let table = RouteTable::build("example.com", &desired, |key| {
            let (commands, _) = tokio::sync::mpsc::unbounded_channel();
            let (_, status) = crate::supervisor::cell::channel(InstanceStatus::stopped(1));
            let gate = Gate::new(Owner {
                commands: crate::supervisor::mailbox::Mailbox::new(commands),
                status,
            });
            gates
                .borrow_mut()
                .insert(key.id.to_string(), Arc::clone(&gate));
            Some(gate)
        });
        let gates = gates.into_inner();
        let Resolved::Service(service) = table.resolve("api.example.com", "/") else {
            panic!()
        };
        let route = |id: &str| {
            let Resolved::Instance(route) = table.resolve(&format!("{id}.api.example.com"), "/")
            else {
                panic!()
            };
            Arc::clone(route)
        };
        let (a, b) = (route("a"), route("b"));
        assert!(service.another(&a).is_none(), "no instance has a backend");
        gates["a"].open(Backend::new(Target::Tcp(1)));
        assert!(
            service.another(&a).is_none(),
            "only the one that failed has"
        );
        gates["c"].open(Backend::new(Target::Tcp(3)));
        for _ in 0..10 {
            let (other, lease) = service.another(&a).unwrap();
            assert_eq!(other.key.to_string(), "api:c");
            assert_eq!(lease.target(), &Target::Tcp(3));
        }
        let picked: std::collections::BTreeSet<String> = (0..20)
            .map(|_| service.another(&b).unwrap().0.key.to_string())
            .collect();
        assert_eq!(
            picked.into_iter().collect::<Vec<_>>(),
            ["api:a", "api:c"],
            "by weight among those that have a backend"
        );
    }
}
