//! Error answers: why a request cannot be forwarded ([`Refusal`]), each a short fixed text
//! with its status (what broke goes to the log, never to the client), counted by code and in
//! the service's counters, or in the one series for nothing declared. Imports `body` and
//! `metrics` of ten's; nothing of the request path but `pool`'s error and the route.

use hyper::{Response, StatusCode};

use crate::body::{self, Body};
use crate::metrics::{ServiceCounters, Started};

use super::pool::SendError;
use super::routes::InstanceRoute;

/// Why a request cannot be forwarded; each becomes a short error response.
pub(super) enum Refusal {
    NotFound(String),
    /// A worker's name (`listen = "none"`).
    NoHttp(String),
    Stopped(String),
    Unavailable(String),
    WakeFailed(String),
    BackendFailed(String),
    Timeout(String),
    /// The request itself is wrong (two Hosts, a malformed body): a fixed text.
    BadRequest(&'static str),
    /// A wake would take the tenants past `memory_limit_total` and nothing could be put to
    /// sleep to make room: try again later.
    NoRoom(String),
}

/// What a refused wake's `Retry-After` says, in seconds.
const NO_ROOM_RETRY_AFTER: u32 = 5;

impl Refusal {
    fn response(self) -> Response<Body> {
        let (status, text) = match self {
            Refusal::NotFound(what) => (
                StatusCode::NOT_FOUND,
                format!("ten: no {what} is declared here"),
            ),
            Refusal::NoHttp(what) => (StatusCode::NOT_FOUND, format!("ten: {what}")),
            Refusal::Stopped(what) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("ten: {what} is stopped"),
            ),
            Refusal::Unavailable(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("ten: {why}")),
            Refusal::WakeFailed(why) | Refusal::BackendFailed(why) => {
                (StatusCode::BAD_GATEWAY, format!("ten: {why}"))
            }
            Refusal::Timeout(why) => (StatusCode::GATEWAY_TIMEOUT, format!("ten: {why}")),
            Refusal::BadRequest(why) => (StatusCode::BAD_REQUEST, format!("ten: {why}")),
            Refusal::NoRoom(why) => {
                let mut response =
                    body::text(StatusCode::SERVICE_UNAVAILABLE, format!("ten: {why}"));
                response.headers_mut().insert(
                    hyper::header::RETRY_AFTER,
                    hyper::header::HeaderValue::from(NO_ROOM_RETRY_AFTER),
                );
                return response;
            }
        };
        body::text(status, text)
    }
}

/// The response for `refusal` of a request for a service (or one of its instances),
/// counted: by code, and in the service's `counters`, since the request was `started`.
pub(super) fn counted(
    refusal: Refusal,
    counters: &ServiceCounters,
    started: Started,
) -> Response<Body> {
    let response = refusal.response();
    let status = response.status().as_u16();
    crate::metrics::global().proxied(status);
    counters.answered(status, started);
    response
}

/// The response for `refusal` of a request that reached nothing declared: counted by class
/// in the one series for those, whatever was asked for.
pub(super) fn unrouted(refusal: Refusal) -> Response<Body> {
    let response = refusal.response();
    crate::metrics::services().unrouted(response.status().as_u16());
    response
}

/// The answer for a request whose backend gave none, with `error`.
pub(super) fn refusal(route: &InstanceRoute, error: SendError) -> Refusal {
    match error {
        SendError::Timeout(_) => Refusal::Timeout(format!(
            "{} did not answer within request_timeout ({})",
            route.key,
            humantime::format_duration(route.request_timeout)
        )),
        SendError::Http(error) if client_body_failed(&error) => {
            tracing::debug!(instance = %route.key, %error, "the client's request body could not be read");
            Refusal::BadRequest("the request body could not be read (malformed or cut short)")
        }
        // What broke (hyper's or the system's words) goes to the log, never to the client.
        error => {
            tracing::warn!(instance = %route.key, %error, "the backend gave no answer");
            Refusal::BackendFailed(format!("{} failed to answer", route.key))
        }
    }
}

/// Whether sending a request failed because its own body, read from the client, failed (a
/// malformed chunked encoding, a client gone in the middle): hyper's client says "user body
/// error" with the server side's error as the cause.
fn client_body_failed(error: &hyper::Error) -> bool {
    error.is_user()
        && std::error::Error::source(error).is_some_and(|cause| cause.is::<hyper::Error>())
}

/// The answer to a request ten will not route (counted with those for nothing declared):
/// 400 with `why`, a short fixed text.
pub(crate) fn bad_request(why: &'static str) -> Response<Body> {
    unrouted(Refusal::BadRequest(why))
}
