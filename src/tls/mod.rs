//! HTTPS: a certificate for every declared name, ordered by ACME (TLS-ALPN-01) while ten
//! serves, and none for anything else.
//!
//! `names` says which names are declared (pure); `Certificates::declare` is told them each
//! time the routes change and keeps one ACME state per name (rustls-acme has no way to add a
//! name to a running state): it loads the name's certificate from the `store`, or orders one,
//! and renews it at two thirds of its lifetime; a failed order is tried again with a backoff,
//! for as long as the name is declared. `resolve` picks the certificate by SNI; `status` is
//! what `ten certs` shows.

pub(crate) mod names;
pub(crate) mod resolve;
pub(crate) mod status;
pub(crate) mod store;

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use rustls::ServerConfig;
use rustls::client::ClientConfig;
use rustls_acme::acme::AcmeError;
use rustls_acme::{AcmeConfig, AcmeState, EventError, EventOk, OrderError, ResolvesServerCertAcme};
use tokio::sync::Semaphore;

use crate::events::EventLog;
use resolve::SniResolver;
use status::{CertView, Ledger};
use store::{NameCache, Store};

pub use rustls_acme::acme::{LETS_ENCRYPT_PRODUCTION_DIRECTORY, LETS_ENCRYPT_STAGING_DIRECTORY};

/// First orders placed at once (renewals are spread over time anyway): a burst of new names
/// is ordered a few at a time, as a CA's rate limits expect.
const CONCURRENT_FIRST_ORDERS: usize = 4;

/// The longest wait between two tries of a failing order (rustls-acme doubles it from 1 s).
const MAX_BACKOFF_SECONDS: u64 = 1 << 16;

/// Where and as whom certificates are ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acme {
    pub directory_url: String,
    /// `mailto:` is added.
    pub email: Option<String>,
    pub cache_dir: PathBuf,
    /// Certificates to trust for the directory's own HTTPS, besides the public roots.
    pub extra_roots: Option<PathBuf>,
}

struct Driver {
    resolver: Arc<ResolvesServerCertAcme>,
    task: tokio::task::JoinHandle<()>,
}

/// The certificates of the declared names.
pub(crate) struct Certificates {
    acme: Acme,
    store: Arc<Store>,
    ledger: Arc<Ledger>,
    sni: Arc<SniResolver>,
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    drivers: Mutex<HashMap<String, Driver>>,
    first_orders: Arc<Semaphore>,
    runtime: tokio::runtime::Handle,
}

impl Certificates {
    /// Opens the store (making the cache directory and the account key if needed) and notes
    /// the certificates it holds. Blocking. Drivers run on `runtime`.
    pub(crate) fn open(
        acme: Acme,
        events: EventLog,
        runtime: tokio::runtime::Handle,
    ) -> io::Result<Arc<Certificates>> {
        let store = Store::open(&acme.cache_dir, &acme.directory_url).map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("certificate store {}: {error}", acme.cache_dir.display()),
            )
        })?;
        let client = resolve::client_config(acme.extra_roots.as_deref())?;
        let ledger = Arc::new(Ledger::new(events));
        for (name, facts) in store.certificates() {
            ledger.certificate(&name, facts);
        }
        let sni = Arc::new(SniResolver::default());
        let server = resolve::server_config(Arc::clone(&sni))?;
        Ok(Arc::new(Certificates {
            acme,
            store: Arc::new(store),
            ledger,
            sni,
            client,
            server,
            drivers: Mutex::default(),
            first_orders: Arc::new(Semaphore::new(CONCURRENT_FIRST_ORDERS)),
            runtime,
        }))
    }

    /// The TLS configuration of the HTTPS port.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server)
    }

    /// The names declared now: new ones get a driver (their certificate loaded or ordered),
    /// names no longer declared lose theirs (their certificate stays in the store, not
    /// renewed, not served). Returns at once.
    pub(crate) fn declare(&self, names: &BTreeSet<String>) {
        let mut drivers = self.drivers.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<String> = drivers
            .keys()
            .filter(|name| !names.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(driver) = drivers.remove(&name) {
                driver.task.abort();
            }
            self.ledger.declare(&name, false);
        }
        for name in names {
            if !drivers.contains_key(name) {
                drivers.insert(name.clone(), self.start(name));
            }
        }
        self.sni.set(
            drivers
                .iter()
                .map(|(name, driver)| (name.clone(), Arc::clone(&driver.resolver)))
                .collect(),
        );
    }

    fn start(&self, name: &str) -> Driver {
        if self.ledger.declare(name, true) {
            self.ledger.ordering(name);
        }
        let cache = NameCache {
            store: Arc::clone(&self.store),
            name: name.to_string(),
            ledger: Arc::clone(&self.ledger),
        };
        let state = AcmeConfig::new_with_client_config([name], Arc::clone(&self.client))
            .directory(&self.acme.directory_url)
            .contact(
                self.acme
                    .email
                    .iter()
                    .map(|email| format!("mailto:{email}")),
            )
            .cache(cache)
            .state();
        let resolver = state.resolver();
        let task = self.runtime.spawn(drive(
            name.to_string(),
            state,
            Arc::clone(&self.ledger),
            Arc::clone(&self.first_orders),
        ));
        Driver { resolver, task }
    }

    /// The ACME directory's URL.
    pub(crate) fn directory(&self) -> &str {
        &self.acme.directory_url
    }

    /// Every name ten knows of: declared ones, and those in the store.
    pub(crate) fn views(&self) -> Vec<CertView> {
        self.ledger.views(now_unix())
    }

    /// Names by state, for `/metrics`.
    pub(crate) fn counts(&self) -> Vec<(&'static str, u64)> {
        self.ledger.counts(now_unix())
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let drivers = self.drivers.get_mut().unwrap_or_else(|e| e.into_inner());
        for driver in drivers.values() {
            driver.task.abort();
        }
    }
}

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// Runs one name's ACME state for as long as the name is declared (the task is aborted when
/// it is not), noting what happens. Until its first certificate (or first failure), it holds
/// one of the permits for first orders.
async fn drive(
    name: String,
    mut state: AcmeState<io::Error>,
    ledger: Arc<Ledger>,
    first_orders: Arc<Semaphore>,
) {
    let mut permit = first_orders.acquire_owned().await.ok();
    let mut failures: u32 = 0;
    while let Some(event) = state.next().await {
        match event {
            Ok(EventOk::DeployedCachedCert) => {
                tracing::info!(%name, "certificate loaded from the store");
                drop(permit.take());
            }
            Ok(EventOk::DeployedNewCert) => {
                failures = 0;
                ledger.issued(&name);
                drop(permit.take());
            }
            Ok(EventOk::CertCacheStore | EventOk::AccountCacheStore) => {}
            Err(EventError::Order(error)) => {
                let retry_in = (1u64 << failures.min(16)).min(MAX_BACKOFF_SECONDS);
                failures += 1;
                ledger.failed(&name, &describe(&error), retry_in);
                drop(permit.take());
            }
            Err(error) => {
                tracing::warn!(%name, %error, "certificate store");
            }
        }
    }
}

/// A failed order in a line an operator can act on: what the CA said (its problem's detail),
/// or why it could not be reached, rather than the client's whole debug dump.
fn describe(error: &OrderError) -> String {
    match error {
        OrderError::BadAuth(auth) => {
            let details: Vec<&str> = auth
                .challenges
                .iter()
                .filter_map(|challenge| challenge.error.as_ref()?.detail.as_deref())
                .collect();
            if details.is_empty() {
                format!("the CA did not validate the name ({:?})", auth.status)
            } else {
                format!("the CA could not validate the name: {}", details.join("; "))
            }
        }
        OrderError::Acme(AcmeError::HttpRequest(request)) => http_failure(&request.to_string()),
        other => other.to_string(),
    }
}

/// What an HTTP exchange with the ACME server came to. The client's error type is not
/// public, only its text (which quotes its causes' debug forms): the useful part is picked
/// out of it, and the whole text kept when nothing is recognized.
fn http_failure(text: &str) -> String {
    let quoted = |after: &str| {
        let start = text.find(after)? + after.len();
        let end = text[start..].find(['"', '\\'])?;
        Some(text[start..start + end].to_string())
    };
    if let Some(rest) = text.strip_prefix("non 2xx http status: ") {
        let status = rest.split_whitespace().next().unwrap_or("?");
        let detail = quoted("\\\"detail\\\": \\\"").or_else(|| quoted("\\\"detail\\\":\\\""));
        return match detail {
            Some(detail) => format!("the ACME server answered {status}: {detail}"),
            None => format!("the ACME server answered {status}"),
        };
    }
    if text.contains("InvalidCertificate") {
        return "cannot reach the ACME server: its certificate is not trusted (for a private ACME \
                server, `acme_root` in [settings.tls] names its CA)"
            .into();
    }
    match quoted("message: \"") {
        Some(message) => format!("cannot reach the ACME server: {message}"),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::http_failure;

    #[test]
    fn a_failed_exchange_with_the_acme_server_is_said_in_a_line() {
        assert_eq!(
            http_failure(
                r#"http error: ConnectError(Io(Os { code: 111, kind: ConnectionRefused, message: "Connection refused" }))"#
            ),
            "cannot reach the ACME server: Connection refused"
        );
        assert_eq!(
            http_failure(
                r#"non 2xx http status: 400 "{\n   \"type\": \"urn:ietf:params:acme:error:accountDoesNotExist\",\n   \"detail\": \"unable to find existing account\",\n   \"status\": 400\n}""#
            ),
            "the ACME server answered 400: unable to find existing account"
        );
        assert!(
            http_failure(
                "http error: ConnectError(TlsConnect(Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }))"
            )
            .contains("acme_root")
        );
        assert_eq!(http_failure("something else"), "something else");
    }
}
