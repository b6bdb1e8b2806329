//! One name's driver: the task that runs its rustls-acme state (load or order, renew, retry
//! with a backoff) and notes what happens in the ledger, and a failed order said in a line an
//! operator can act on. Must not block the runtime.

use std::io;
use std::sync::Arc;

use futures_util::StreamExt;
use rustls_acme::acme::AcmeError;
use rustls_acme::{AcmeState, EventError, EventOk, OrderError, ResolvesServerCertAcme};
use tokio::sync::Semaphore;

use super::status::Ledger;

/// The longest wait between two tries of a failing order (rustls-acme doubles it from 1 s).
const MAX_BACKOFF_SECONDS: u64 = 1 << 16;

pub(super) struct Driver {
    pub(super) resolver: Arc<ResolvesServerCertAcme>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

/// Runs one name's ACME state for as long as the name is declared (the task is aborted when
/// it is not), noting what happens. Until its first certificate (or first failure), it holds
/// one of the permits for first orders.
pub(super) async fn drive(
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
