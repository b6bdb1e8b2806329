//! `Certificates`: told the declared names on every route change, it keeps one driver (one
//! rustls-acme state) per name and hands the resolver the names' states; what `ten certs` and
//! `/metrics` ask of it. Must not order anything for a name that is not declared.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::client::ClientConfig;
use rustls_acme::AcmeConfig;
use tokio::sync::Semaphore;

use super::driver::{Driver, drive};
use super::now_unix;
use super::resolve::{self, SniResolver};
use super::status::{CertView, Ledger};
use super::store::{NameCache, Store};
use crate::events::EventLog;

/// First orders placed at once (renewals are spread over time anyway): a burst of new names
/// is ordered a few at a time, as a CA's rate limits expect.
const CONCURRENT_FIRST_ORDERS: usize = 4;

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
