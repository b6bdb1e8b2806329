//! HTTPS: a certificate for every declared name, ordered by ACME (TLS-ALPN-01) while ten
//! serves, and none for anything else.
//!
//! `names` says which names are declared (pure); `Certificates::declare` is told them each
//! time the routes change and keeps one ACME state per name (rustls-acme has no way to add a
//! name to a running state): it loads the name's certificate from the `store`, or orders one,
//! and renews it at two thirds of its lifetime; a failed order is tried again with a backoff,
//! for as long as the name is declared. `resolve` picks the certificate by SNI; `status` is
//! what `ten certs` shows.

mod certificates;
mod driver;
pub(crate) mod names;
pub(crate) mod resolve;
pub(crate) mod status;
pub(crate) mod store;

pub(crate) use certificates::{Acme, Certificates};
pub use rustls_acme::acme::{LETS_ENCRYPT_PRODUCTION_DIRECTORY, LETS_ENCRYPT_STAGING_DIRECTORY};

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
