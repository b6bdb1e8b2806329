//! Sending a request again when its backend failed before answering: a tenant that crashed
//! (or was killed) costs its clients a wait, not an error, as it did with the original.
//!
//! What may be sent again, after a failure before any byte of the response head (connection
//! refused, reset or closed):
//! - a request that never left (no connection could be opened, or hyper gave it back): any;
//! - a request that was sent: only an idempotent one (GET, HEAD, OPTIONS, TRACE, PUT, DELETE:
//!   the methods HTTP defines as idempotent) without a body, from a copy of its head made before it was sent
//!   ([`Head`]), and only once (a request that kills its backend kills it twice, not forever).
//!
//! A timeout is never sent again (the backend may still be at work), nor is a request whose
//! answer could not be read (the backend did answer).
//!
//! Where to: on a service's host (weighted), to another instance of the service that takes
//! traffic, if there is one ([`ServiceRoute::another`]); otherwise to the same instance once it
//! has restarted ([`restarted`]).
//!
//! Crashed, or alive? Right after a failure the gate's current backend is still the one that
//! failed, until the instance's task hears of the exit (the reaper sees it within
//! milliseconds) and closes it. So the request waits for the gate to change, at most
//! [`GRACE`]: if the failed backend stops being the current one, or the phase leaves
//! `running`, the instance is restarting, and the request is held as a wake is (at most the
//! instance's `startup_timeout`, once per request however often it is sent) and sent again
//! to the new backend. If the backend stays current and the instance running, the backend is
//! alive and broke this connection: 502 then, as before.
//!
//! Only the rare path is here: the hot path pays for the copy of an idempotent request's head
//! and nothing else.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, Uri, Version};
use tokio::time::Instant;

use crate::observed::Phase;
use crate::supervisor::gate::Lease;

use super::pool::{Failed, Pool, Pooled, SendError};
use super::routes::{InstanceRoute, ServiceRoute};
use super::timers::Timers;
use super::wake::wait_for_backend;
use super::{Refusal, refusal};

/// How long the backend that failed may stay the instance's current one before it is taken to
/// be alive (and the failure a 502). The instance's task closes the backend of a process that
/// ended within milliseconds of its end.
pub(crate) const GRACE: Duration = Duration::from_millis(100);
/// At most this many sends after the first (each after a failure before any answer).
const MAX_RESENDS: usize = 4;

/// Whether a request that was sent and got no answer may be sent again: an idempotent method
/// (as HTTP defines them) and no body (a body streams from the client: it cannot be sent twice).
pub(crate) fn resendable(method: &Method, has_body: bool) -> bool {
    !has_body
        && (*method == Method::GET
            || *method == Method::HEAD
            || *method == Method::OPTIONS
            || *method == Method::TRACE
            || *method == Method::PUT
            || *method == Method::DELETE)
}

/// A copy of the head of a request that may be sent again after it left: what hyper does not
/// give back once it has taken the request. Its headers are a plain list, in order (one
/// allocation, where a copy of the header map takes two and copies its index too); the map
/// is made again only when the request is sent again.
pub(crate) struct Head {
    method: Method,
    /// The request's target: the backend gets the origin form (`/path?query`, or `*`).
    target: PathAndQuery,
    version: Version,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Head {
    /// The copy to keep of `request` (as the backend gets it), if it may be sent again.
    pub(crate) fn of(request: &Request<UpstreamBody>) -> Option<Head> {
        let has_body = !http_body::Body::is_end_stream(request.body());
        let uri = request.uri();
        if !resendable(request.method(), has_body) || uri.scheme().is_some() {
            return None;
        }
        let target = uri.path_and_query()?.clone();
        let mut headers = Vec::with_capacity(request.headers().len());
        headers.extend(
            request
                .headers()
                .iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        Some(Head {
            method: request.method().clone(),
            target,
            version: request.version(),
            headers,
        })
    }

    fn into_request(self) -> Request<UpstreamBody> {
        let mut request = Request::new(UpstreamBody::Empty);
        *request.method_mut() = self.method;
        *request.uri_mut() = Uri::from(self.target);
        *request.version_mut() = self.version;
        let headers = request.headers_mut();
        headers.reserve(self.headers.len());
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        request
    }
}

/// A request's body on its way to a backend: the client's, or none (a request sent again from
/// the copy of its head).
pub(crate) enum UpstreamBody {
    Client(Incoming),
    Empty,
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpstreamBody::Client(body) => Pin::new(body).poll_frame(cx),
            UpstreamBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Client(body) => body.is_end_stream(),
            UpstreamBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Client(body) => body.size_hint(),
            UpstreamBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// A response head, after the send on `lease` failed: the request is sent again where it may
/// go (see the module documentation) until it is answered, or the answer says why not.
pub(super) async fn resend(
    pool: &Arc<Pool<UpstreamBody>>,
    route: Arc<InstanceRoute>,
    service: Option<&ServiceRoute>,
    lease: Lease,
    failed: Box<Failed<UpstreamBody>>,
    copy: Option<Head>,
) -> Result<(Lease, Response<Incoming>, Pooled<UpstreamBody>), Refusal> {
    let mut retry = Retry {
        copy,
        hold_until: None,
    };
    let (mut route, mut lease, mut failed) = (route, lease, failed);
    for _ in 0..MAX_RESENDS {
        let request;
        (route, lease, request) =
            next(pool.timers(), route, service, lease, failed, &mut retry).await?;
        match pool
            .send(lease.target(), request, route.request_timeout)
            .await
        {
            Ok((response, connection)) => return Ok((lease, response, connection)),
            Err(next) => failed = next,
        }
    }
    Err(refusal(&route, failed.error))
}

/// What a request keeps while it is sent again: the copy of its head (if it may be sent again
/// after it left), and when its hold for a restart ends (set by the first).
struct Retry {
    copy: Option<Head>,
    hold_until: Option<Instant>,
}

/// After the send on `lease` failed with `failed`: what to send again and where, once the
/// instance has restarted if it must (a lease on the backend it goes to), or why nothing.
async fn next(
    timers: &Timers,
    route: Arc<InstanceRoute>,
    service: Option<&ServiceRoute>,
    lease: Lease,
    failed: Box<Failed<UpstreamBody>>,
    retry: &mut Retry,
) -> Result<(Arc<InstanceRoute>, Lease, Request<UpstreamBody>), Refusal> {
    let Failed { error, unsent } = *failed;
    let Some(request) = again(&error, unsent, &mut retry.copy) else {
        return Err(refusal(&route, error));
    };
    if let Some((other, other_lease)) = service.and_then(|service| service.another(&route)) {
        return Ok((other, other_lease, request));
    }
    let lease = restarted(&route, lease, error, timers, &mut retry.hold_until).await?;
    Ok((route, lease, request))
}

/// What to send again after `error`: the request if it never left; else, once, one made from
/// the copy of its head, if the connection was lost before the answer. `None`: nothing.
fn again(
    error: &SendError,
    unsent: Option<Request<UpstreamBody>>,
    copy: &mut Option<Head>,
) -> Option<Request<UpstreamBody>> {
    if matches!(error, SendError::Timeout(_)) {
        return None;
    }
    match unsent {
        Some(request) => Some(request),
        None if error.lost_connection() => copy.take().map(Head::into_request),
        None => None,
    }
}

/// A lease on the instance's new backend once it has restarted, after the one of `failed`
/// failed with `error`; a 502 at the end of the grace if that backend is alive (see the module
/// documentation). The hold ends at `hold_until`, set by the first hold of the request.
async fn restarted(
    route: &InstanceRoute,
    failed: Lease,
    error: SendError,
    timers: &Timers,
    hold_until: &mut Option<Instant>,
) -> Result<Lease, Refusal> {
    let gate = Arc::clone(failed.gate());
    let grace_end = Instant::now() + GRACE;
    loop {
        let changed = gate.changed();
        let running = gate.owner().status.borrow().phase == Phase::Running;
        if !failed.is_current() || !running {
            break;
        }
        tokio::select! {
            () = changed => {}
            () = timers.sleep_until(grace_end) => return Err(refusal(route, error)),
        }
    }
    // The failed backend no longer counts this request in flight (a stop waits for those).
    drop(failed);
    let deadline = *hold_until.get_or_insert_with(|| Instant::now() + route.startup_timeout);
    wait_for_backend(&gate, route, timers, deadline).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_requests_without_a_body_are_sent_again_once_sent() {
        let cases = [
            (Method::GET, false, true),
            (Method::HEAD, false, true),
            (Method::OPTIONS, false, true),
            (Method::TRACE, false, true),
            (Method::PUT, false, true),
            (Method::DELETE, false, true),
            (Method::POST, false, false),
            (Method::PATCH, false, false),
            (Method::CONNECT, false, false),
            (Method::from_bytes(b"PROPFIND").unwrap(), false, false),
            (Method::GET, true, false),
            (Method::PUT, true, false),
            (Method::DELETE, true, false),
            (Method::POST, true, false),
        ];
        for (method, has_body, expected) in cases {
            assert_eq!(
                resendable(&method, has_body),
                expected,
                "{method}, body: {has_body}"
            );
        }
    }

    fn request(method: Method, body: UpstreamBody) -> Request<UpstreamBody> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = Uri::from_static("/notes?page=2");
        let headers = request.headers_mut();
        headers.insert("x-request-id", "abc".parse().unwrap());
        headers.append("accept", "text/html".parse().unwrap());
        headers.append("accept", "*/*".parse().unwrap());
        headers.insert("x-empty", HeaderValue::from_static(""));
        headers.insert("x-opaque", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        request
    }

    fn lost() -> SendError {
        SendError::Connect(std::io::ErrorKind::ConnectionRefused.into())
    }

    #[test]
    fn a_copy_is_kept_only_of_what_may_be_sent_again_and_sends_the_same_head() {
        let get = request(Method::GET, UpstreamBody::Empty);
        let head = Head::of(&get).expect("a GET without a body may be sent again");
        let again = head.into_request();
        assert_eq!(again.method(), Method::GET);
        assert_eq!(again.uri(), "/notes?page=2");
        assert_eq!(again.version(), get.version());
        assert_eq!(again.headers(), get.headers());
        assert!(http_body::Body::is_end_stream(again.body()));
        assert!(Head::of(&request(Method::POST, UpstreamBody::Empty)).is_none());
    }

    #[test]
    fn what_is_sent_again_after_a_failure() {
        let copy = || Head::of(&request(Method::GET, UpstreamBody::Empty));
        // Sent, connection lost: the copy, once.
        let mut kept = copy();
        assert!(again(&lost(), None, &mut kept).is_some());
        assert!(again(&lost(), None, &mut kept).is_none(), "only once");
        // Never left: the request itself, whatever it is, even without a copy.
        let post = request(Method::POST, UpstreamBody::Empty);
        let resent = again(&lost(), Some(post), &mut None).expect("it never left");
        assert_eq!(resent.method(), Method::POST);
        // A timeout: nothing, not even a request that never left.
        let timeout = SendError::Timeout(Duration::from_secs(1));
        assert!(again(&timeout, None, &mut copy()).is_none());
        let unsent = request(Method::GET, UpstreamBody::Empty);
        assert!(again(&timeout, Some(unsent), &mut copy()).is_none());
        // Sent without a copy (not idempotent, or with a body): nothing.
        assert!(again(&lost(), None, &mut None).is_none());
    }
}
