//! What ten knows of each name's certificate: the ledger the ACME drivers and the store write
//! to, and the view `ten certs` and the API show. Events record orders, renewals and
//! failures.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::events::EventLog;

/// What a certificate says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertFacts {
    /// The issuer's common name (else its whole name).
    pub issuer: String,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
}

impl CertFacts {
    /// The facts of the first certificate in `pem` (a private key may come first).
    pub(crate) fn parse(pem: &[u8]) -> Option<CertFacts> {
        let block = x509_parser::pem::Pem::iter_from_buffer(pem)
            .flatten()
            .find(|block| block.label == "CERTIFICATE")?;
        let certificate = block.parse_x509().ok()?;
        let issuer = certificate
            .issuer()
            .iter_common_name()
            .next()
            .and_then(|name| name.as_str().ok())
            .map_or_else(|| certificate.issuer().to_string(), str::to_string);
        let validity = certificate.validity();
        Some(CertFacts {
            issuer,
            not_before_unix: validity.not_before.timestamp(),
            not_after_unix: validity.not_after.timestamp(),
        })
    }

    /// When it is renewed: at two thirds of its lifetime.
    pub fn renew_at_unix(&self) -> i64 {
        self.not_before_unix + (self.not_after_unix - self.not_before_unix) * 2 / 3
    }
}

/// Where a name's certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertState {
    /// Declared, no certificate yet, the first order under way.
    Ordering,
    /// Declared, no certificate, the last order failed: tried again with a backoff.
    Retrying,
    /// Served; renewed at two thirds of its lifetime.
    Valid,
    /// Declared, and the certificate it has is past its end (renewal keeps failing).
    Expired,
    /// In the store but no longer declared: kept, not renewed, not served.
    Undeclared,
}

impl CertState {
    pub fn as_str(self) -> &'static str {
        match self {
            CertState::Ordering => "ordering",
            CertState::Retrying => "retrying",
            CertState::Valid => "valid",
            CertState::Expired => "expired",
            CertState::Undeclared => "undeclared",
        }
    }

    pub(crate) const ALL: [CertState; 5] = [
        CertState::Ordering,
        CertState::Retrying,
        CertState::Valid,
        CertState::Expired,
        CertState::Undeclared,
    ];
}

/// One name, as `ten certs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertView {
    pub name: String,
    pub state: CertState,
    pub certificate: Option<CertFacts>,
    /// Orders placed for it since ten started.
    pub orders: u64,
    /// Orders that failed in a row (0 once one succeeds).
    pub failures: u32,
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Entry {
    declared: bool,
    facts: Option<CertFacts>,
    orders: u64,
    failures: u32,
    last_error: Option<String>,
}

/// Every name ten has heard of since it started, declared or in the store.
pub(crate) struct Ledger {
    entries: Mutex<BTreeMap<String, Entry>>,
    events: EventLog,
}

impl Ledger {
    pub(crate) fn new(events: EventLog) -> Ledger {
        Ledger {
            entries: Mutex::default(),
            events,
        }
    }

    fn with<T>(&self, name: &str, change: impl FnOnce(&mut Entry) -> T) -> T {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        change(entries.entry(name.to_string()).or_default())
    }

    /// Whether `name` is declared; says whether it lacks a certificate.
    pub(crate) fn declare(&self, name: &str, declared: bool) -> bool {
        self.with(name, |entry| {
            entry.declared = declared;
            entry.facts.is_none()
        })
    }

    /// A certificate was loaded from the store or received.
    pub(crate) fn certificate(&self, name: &str, facts: Option<CertFacts>) {
        self.with(name, |entry| entry.facts = facts);
    }

    /// A declared name has no certificate: one is ordered.
    pub(crate) fn ordering(&self, name: &str) {
        self.events.record(
            None,
            "cert",
            format!("ordering a certificate for {name}"),
            None,
        );
    }

    /// An order succeeded (the certificate itself is noted by the store).
    pub(crate) fn issued(&self, name: &str) {
        let renewal = self.with(name, |entry| {
            // The new certificate is stored (and noted) just after: one noted now is older.
            let renewal = entry.facts.is_some();
            entry.orders += 1;
            entry.failures = 0;
            entry.last_error = None;
            renewal
        });
        crate::metrics::global().acme_order(true);
        let what = if renewal { "renewed" } else { "issued" };
        self.events
            .record(None, "cert", format!("certificate for {name} {what}"), None);
    }

    /// An order failed; the next one starts after `retry_in_seconds`.
    pub(crate) fn failed(&self, name: &str, error: &str, retry_in_seconds: u64) {
        let failures = self.with(name, |entry| {
            entry.orders += 1;
            entry.failures += 1;
            entry.last_error = Some(error.to_string());
            entry.failures
        });
        crate::metrics::global().acme_order(false);
        self.events.warn(
            None,
            "cert",
            format!(
                "the order of a certificate for {name} failed ({failures} in a row); ten tries again in {retry_in_seconds} s: {error}"
            ),
            None,
        );
    }

    /// Every name, sorted; `now_unix` tells valid from expired.
    pub(crate) fn views(&self, now_unix: i64) -> Vec<CertView> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .map(|(name, entry)| CertView {
                name: name.clone(),
                state: state_of(entry, now_unix),
                certificate: entry.facts.clone(),
                orders: entry.orders,
                failures: entry.failures,
                last_error: entry.last_error.clone(),
            })
            .collect()
    }

    /// How many names are in each state.
    pub(crate) fn counts(&self, now_unix: i64) -> Vec<(&'static str, u64)> {
        let views = self.views(now_unix);
        CertState::ALL
            .iter()
            .map(|state| {
                let count = views.iter().filter(|view| view.state == *state).count();
                (state.as_str(), count as u64)
            })
            .collect()
    }
}

fn state_of(entry: &Entry, now_unix: i64) -> CertState {
    match (&entry.facts, entry.declared) {
        (_, false) => CertState::Undeclared,
        (Some(facts), true) if facts.not_after_unix <= now_unix => CertState::Expired,
        (Some(_), true) => CertState::Valid,
        (None, true) if entry.failures > 0 => CertState::Retrying,
        (None, true) => CertState::Ordering,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(not_after_unix: i64) -> CertFacts {
        CertFacts {
            issuer: "Test CA".into(),
            not_before_unix: 0,
            not_after_unix,
        }
    }

    #[test]
    fn a_name_goes_from_ordering_to_valid_and_shows_failures_meanwhile() {
        let ledger = Ledger::new(EventLog::default());
        ledger.declare("a.example.com", true);
        let state = |ledger: &Ledger| ledger.views(100)[0].state;
        assert_eq!(state(&ledger), CertState::Ordering);
        ledger.failed("a.example.com", "connection refused", 1);
        assert_eq!(state(&ledger), CertState::Retrying);
        assert_eq!(
            ledger.views(100)[0].last_error.as_deref(),
            Some("connection refused")
        );
        ledger.issued("a.example.com");
        ledger.certificate("a.example.com", Some(facts(900)));
        let view = &ledger.views(100)[0];
        assert_eq!(
            (view.state, view.orders, view.failures),
            (CertState::Valid, 2, 0)
        );
        assert_eq!(view.last_error, None);
        assert_eq!(state_of_at(&ledger, 900), CertState::Expired);
        ledger.declare("a.example.com", false);
        assert_eq!(state(&ledger), CertState::Undeclared);
        assert_eq!(
            ledger.counts(100),
            [
                ("ordering", 0),
                ("retrying", 0),
                ("valid", 0),
                ("expired", 0),
                ("undeclared", 1)
            ]
        );
    }

    fn state_of_at(ledger: &Ledger, now: i64) -> CertState {
        ledger.views(now)[0].state
    }

    #[test]
    fn renewal_is_at_two_thirds_of_the_lifetime() {
        let facts = CertFacts {
            issuer: String::new(),
            not_before_unix: 1000,
            not_after_unix: 1000 + 90 * 86400,
        };
        assert_eq!(facts.renew_at_unix(), 1000 + 60 * 86400);
    }
}
