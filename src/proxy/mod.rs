//! The reverse proxy: routes requests by Host to instances, waking sleeping ones, with pooled
//! keep-alive connections to backends.
//!
//! The request path takes no global lock: the route table is an immutable snapshot (swapped
//! by the reconciler), an instance's backend and last activity are atomics in its gate. Bodies
//! stream both ways; upgrades (WebSocket) are tunnelled. Hop-by-hop headers are removed,
//! `X-Forwarded-For`, `-Proto` and `-Host` set (`forwarded`: a client's own claims are replaced,
//! a trusted proxy's kept), every other header passed unchanged.
//!
//! Errors: undeclared → 404 (nothing is started, created or counted), stopped → 503, backend
//! failure → 502, no answer in time (wake or request) → 504, a request that is itself wrong
//! (two `Host` headers, a body that cannot be read) → 400. Bodies are short fixed texts that
//! say which: what broke (hyper's or the system's words, a spawn's error) goes to the log.
//!
//! A request for an instance that is restarting (`backoff`) is held until it answers again, as
//! for a wake; a request whose backend failed before answering is sent again where that is
//! safe (`retry`), to another instance of its service or to the restarted instance.
//!
//! Counted (`crate::metrics`, atomics): the status of every answer to a request for a declared
//! instance or service, by code, and by class with its latency in the service's counters,
//! which the route entry holds (no lookup); how long requests waited for a wake, by service;
//! requests for nothing declared, by class in one fixed series.

pub(crate) mod connector;
mod driven;
pub(crate) mod forwarded;
pub(crate) mod pool;
pub(crate) mod retry;
pub(crate) mod routes;
pub(crate) mod timers;
mod wake;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;

use crate::body::{self, Body, BoxError};
use crate::metrics::{ServiceCounters, Started};
use crate::supervisor::gate::Lease;

pub(crate) use forwarded::Peer;
use forwarded::set_forwarded;
use pool::{Pool, Pooled, PooledBody, SendError};
use retry::{Head, UpstreamBody};
use routes::{InstanceRoute, Resolved, RouteTable, ServiceRoute};
use timers::Timers;
use wake::acquire;

/// Where a request goes.
pub(crate) enum Routed {
    /// For ten's own pages (health, API, dashboard).
    Own(Request<Incoming>),
    /// Answered already (undeclared, or no instance takes traffic).
    Done(Response<Body>),
    /// To an instance (picked from a service, when the service is given): `Proxy::forward`
    /// sends it.
    Forward(
        Arc<InstanceRoute>,
        Option<Arc<ServiceRoute>>,
        Request<Incoming>,
    ),
}

pub(crate) struct Proxy {
    routes: Arc<ArcSwap<RouteTable>>,
    /// This worker's connections to backends.
    pool: Arc<Pool<UpstreamBody>>,
}

/// Why a request cannot be forwarded; each becomes a short error response.
enum Refusal {
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

impl Proxy {
    pub(crate) fn new(routes: Arc<ArcSwap<RouteTable>>, timers: Timers) -> Self {
        Self {
            routes,
            pool: Arc::new(Pool::new(timers)),
        }
    }

    /// The backend connection pool, for its upkeep task (`Pool::maintain`).
    pub(crate) fn pool(&self) -> Arc<Pool<UpstreamBody>> {
        Arc::clone(&self.pool)
    }

    /// The peer of a connection accepted from `address`: trusted if it is in
    /// `trusted_proxies` of the current configuration.
    pub(crate) fn peer(&self, address: SocketAddr) -> Peer {
        Peer::of(address, self.routes.load().trusted_proxies())
    }

    /// The address of the client a request from `peer` is from (for the limit on failed
    /// token checks): the peer, or what a trusted proxy says.
    pub(crate) fn client(&self, peer: &Peer, headers: &HeaderMap) -> IpAddr {
        peer.client(headers, self.routes.load().trusted_proxies())
    }

    /// What a client connection may hold, per the current configuration.
    pub(crate) fn connection_limits(&self) -> crate::config::ConnectionLimits {
        self.routes.load().connection_limits()
    }

    /// Whether `/metrics` is served without a token, per the current configuration.
    pub(crate) fn public_metrics(&self) -> bool {
        self.routes.load().public_metrics()
    }

    /// Where a request goes: to an instance (of a service, by weight), to ten's own pages, or
    /// answered at once. Not async, so that a request's future holds only `forward`'s state.
    pub(crate) fn route(&self, request: Request<Incoming>, host: &str) -> Routed {
        let table = self.routes.load();
        match table.resolve(host, request.uri().path()) {
            Resolved::Own => Routed::Own(request),
            Resolved::Instance(route) => Routed::Forward(Arc::clone(route), None, request),
            Resolved::Service(service) => match service.pick() {
                Some(route) => {
                    Routed::Forward(Arc::clone(route), Some(Arc::clone(service)), request)
                }
                None => Routed::Done(counted(
                    Refusal::Unavailable(format!(
                        "no instance of {} takes traffic (every weight is 0)",
                        service.name
                    )),
                    &service.counters,
                    Started::now(),
                )),
            },
            Resolved::NotFound(what) => Routed::Done(unrouted(Refusal::NotFound(what))),
            Resolved::NoHttp(what) => Routed::Done(unrouted(Refusal::NoHttp(what))),
        }
    }

    /// Makes `request` what the instance of `route` gets (in place: target, headers), and
    /// returns the future that forwards it, waking the instance if it sleeps. `service`: the
    /// service it was picked from, whose other instances may take the request if this one
    /// fails. Every answer is counted by status. The future owns what it needs, so a
    /// request's future is this one alone (hyper keeps one allocated per open connection and
    /// moves each request's into it).
    pub(crate) fn forward(
        &self,
        route: Arc<InstanceRoute>,
        service: Option<Arc<ServiceRoute>>,
        mut request: Request<Incoming>,
        peer: &Peer,
        host: &str,
    ) -> impl Future<Output = Response<Body>> + Send + use<> {
        let started = Started::now();
        let upgrade = is_upgrade(request.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        to_upstream(&mut request, peer, host, upgrade);
        let request = request.map(UpstreamBody::Client);
        // What hyper does not give back once it has sent a request: kept for those that may
        // be sent again after their backend failed (idempotent, no body).
        let copy = Head::of(&request);
        send_to_instance(
            Arc::clone(&self.pool),
            route,
            service,
            request,
            copy,
            client_upgrade,
            started,
        )
    }
}

/// `Proxy::forward`'s future. An `async` block rather than an `async fn`, whose arguments
/// take room twice in its future (as arguments, and as the locals they are moved into): 136
/// bytes more per request's future, which hyper keeps for every open connection.
#[expect(clippy::manual_async_fn, reason = "an async fn's future is larger")]
fn send_to_instance(
    pool: Arc<Pool<UpstreamBody>>,
    route: Arc<InstanceRoute>,
    service: Option<Arc<ServiceRoute>>,
    request: Request<UpstreamBody>,
    copy: Option<Head>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    started: Started,
) -> impl Future<Output = Response<Body>> + Send + use<> {
    async move {
        let ready = route
            .gate
            .as_ref()
            .filter(|_| route.state != crate::config::RunState::Stopped)
            .and_then(|gate| gate.lease());
        let (route, lease) = match ready {
            Some(lease) => (route, lease),
            // Boxed: the rare path's large state stays out of every request's future (which
            // is moved, whole, into place for each request).
            None => {
                // The rare path: the counters are kept for a refusal (`acquire` takes the route).
                let counters = Arc::clone(&route.counters);
                match Box::pin(acquire(route, service.as_deref(), pool.timers())).await {
                    Ok(acquired) => acquired,
                    Err(refusal) => return counted(refusal, &counters, started),
                }
            }
        };
        let failed = match pool
            .send(lease.target(), request, route.request_timeout)
            .await
        {
            Ok((response, connection)) => {
                return answer(
                    lease,
                    response,
                    connection,
                    client_upgrade,
                    &route.counters,
                    started,
                );
            }
            Err(failed) => failed,
        };
        // Boxed, as every rare path: its state (the loop that sends again) stays out of every
        // request's future.
        let counters = Arc::clone(&route.counters);
        let resent = retry::resend(&pool, route, service.as_deref(), lease, failed, copy);
        match Box::pin(resent).await {
            Ok((lease, response, connection)) => answer(
                lease,
                response,
                connection,
                client_upgrade,
                &counters,
                started,
            ),
            Err(refusal) => counted(refusal, &counters, started),
        }
    }
}

/// What the client gets of the backend's `response`: its body streamed (or the upgraded
/// connection tunnelled), counted: by code, and in its service's `counters`, since it was
/// `started`.
fn answer(
    lease: Lease,
    mut response: Response<Incoming>,
    connection: Pooled<UpstreamBody>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    counters: &ServiceCounters,
    started: Started,
) -> Response<Body> {
    let status = response.status().as_u16();
    crate::metrics::global().proxied(status);
    counters.answered(status, started);
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let backend_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let _lease = lease;
            if let (Ok(client), Ok(backend)) = (client_upgrade.await, backend_upgrade.await) {
                let _ = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(client),
                    &mut TokioIo::new(backend),
                )
                .await;
            }
        });
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, body::full(Bytes::new()));
    }
    strip_hop_by_hop(response.headers_mut(), false);
    let (parts, incoming) = response.into_parts();
    let body = LeasedBody {
        inner: PooledBody::new(incoming, connection),
        _lease: lease,
    };
    Response::from_parts(parts, body.boxed())
}

/// The response for `refusal` of a request for a service (or one of its instances),
/// counted: by code, and in the service's `counters`, since the request was `started`.
fn counted(refusal: Refusal, counters: &ServiceCounters, started: Started) -> Response<Body> {
    let response = refusal.response();
    let status = response.status().as_u16();
    crate::metrics::global().proxied(status);
    counters.answered(status, started);
    response
}

/// The response for `refusal` of a request that reached nothing declared: counted by class
/// in the one series for those, whatever was asked for.
fn unrouted(refusal: Refusal) -> Response<Body> {
    let response = refusal.response();
    crate::metrics::services().unrouted(response.status().as_u16());
    response
}

/// The answer for a request whose backend gave none, with `error`.
fn refusal(route: &InstanceRoute, error: SendError) -> Refusal {
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

/// Headers that belong to one hop, not to the request.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| {
                value
                    .split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Removes hop-by-hop headers, and those the Connection header names. An upgrade keeps
/// `Connection: upgrade` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages have none: one pass over the names spares a lookup per hop-by-hop name.
    if headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        remove_hop_by_hop(headers, upgrade);
    }
}

/// `strip_hop_by_hop` once some are known to be there.
fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    let upgrade_value = headers.get(header::UPGRADE).cloned();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    if upgrade && let Some(value) = upgrade_value {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, value);
    }
}

/// Makes `request` what the backend gets, in place (the request is not moved): origin-form
/// target (`/path?query`), hop-by-hop headers gone, `Host` as asked, `X-Forwarded-*` set.
fn to_upstream<B>(request: &mut Request<B>, peer: &Peer, host: &str, upgrade: bool) {
    let uri = request.uri_mut();
    if uri.scheme().is_some() || uri.authority().is_some() {
        // An absolute-form request (`GET http://host/path`): the backend gets the path only.
        let path = uri.path_and_query().map_or("/", |path| path.as_str());
        *uri = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    }
    let headers = request.headers_mut();
    // One pass over the headers (a handful) finds what would otherwise take a lookup each:
    // the Host and how often it is there, a hop-by-hop header.
    let mut original_host = None;
    let mut hosts = 0;
    let mut hop_by_hop = false;
    for (name, value) in headers.iter() {
        if name == header::HOST {
            hosts += 1;
            original_host.get_or_insert_with(|| value.clone());
        } else if HOP_BY_HOP.contains(name) {
            hop_by_hop = true;
        }
    }
    if hop_by_hop {
        // The Connection header may name any header, Host and X-Forwarded-For too.
        remove_hop_by_hop(headers, upgrade);
    }
    let routed_host = original_host.or_else(|| HeaderValue::from_str(host).ok());
    if let Some(value) = &routed_host
        && (hosts != 1 || hop_by_hop)
    {
        // The app sees the Host that was routed: one, even if the request repeated it (or
        // had none, or named it in Connection).
        headers.insert(header::HOST, value.clone());
    }
    set_forwarded(headers, peer, routed_host);
}

/// A backend's response body (reading it drives its connection, which goes back to the pool
/// at its end); the request stays counted in flight until it is sent.
struct LeasedBody {
    inner: PooledBody<UpstreamBody>,
    _lease: Lease,
}

impl http_body::Body for LeasedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(|error| Box::new(error) as BoxError)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::forwarded::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_the_rest_stays() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer app-token"),
        );
        headers.insert("x-custom", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut headers, false);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort();
        assert_eq!(names, ["authorization", "x-custom"]);
    }

    #[test]
    fn the_backend_gets_one_host_the_path_and_forwarded_headers() {
        // From a client, and from a trusted proxy (whose X-Forwarded-For goes on).
        for (trusted, forwarded_for) in [(false, "10.1.2.3"), (true, "192.0.2.7, 10.1.2.3")] {
            let peer = Peer::new("10.1.2.3:5000".parse().unwrap(), trusted);
            let mut request = Request::builder()
                .uri("http://a.notes.example.com/x?y=1")
                .header(header::HOST, "a.notes.example.com")
                .header(header::HOST, "evil.example.org")
                .header(&X_FORWARDED_FOR, "192.0.2.7")
                .header(header::AUTHORIZATION, "Bearer t")
                .body(())
                .unwrap();
            to_upstream(&mut request, &peer, "a.notes.example.com", false);
            let headers = request.headers();
            assert_eq!(request.uri(), "/x?y=1");
            let hosts: Vec<_> = headers.get_all(header::HOST).iter().collect();
            assert_eq!(hosts, ["a.notes.example.com"]);
            assert_eq!(headers[&X_FORWARDED_HOST], "a.notes.example.com");
            assert_eq!(
                headers[&X_FORWARDED_FOR], forwarded_for,
                "trusted: {trusted}"
            );
            assert_eq!(headers[&X_FORWARDED_PROTO], "http");
            assert_eq!(headers[header::AUTHORIZATION], "Bearer t");
        }
    }

    #[test]
    fn forwarded_headers_are_set_by_the_proxy_whatever_a_client_says() {
        let peer = Peer::new("10.1.2.3:5000".parse().unwrap(), false);
        // What the backend gets of Host and X-Forwarded-*, one "name: value" per value.
        let upstream = |request: &mut Request<()>| -> Vec<String> {
            to_upstream(request, &peer, "a.notes.example.com", false);
            [
                &header::HOST,
                &X_FORWARDED_FOR,
                &X_FORWARDED_PROTO,
                &X_FORWARDED_HOST,
            ]
            .into_iter()
            .flat_map(|name| {
                request
                    .headers()
                    .get_all(name)
                    .iter()
                    .map(move |value| format!("{name}: {}", value.to_str().unwrap()))
            })
            .collect()
        };
        let expected = [
            "host: a.notes.example.com",
            "x-forwarded-for: 10.1.2.3",
            "x-forwarded-proto: http",
            "x-forwarded-host: a.notes.example.com",
        ];
        // The usual request: one Host, nothing forwarded yet.
        let mut plain = Request::builder()
            .header(header::HOST, "a.notes.example.com")
            .body(())
            .unwrap();
        assert_eq!(upstream(&mut plain), expected);
        // Claims of its own are replaced, not added to.
        let mut claims = Request::builder()
            .header(header::HOST, "a.notes.example.com")
            .header(&X_FORWARDED_FOR, "192.0.2.7")
            .header(&X_FORWARDED_FOR, "192.0.2.8")
            .header(&X_FORWARDED_PROTO, "https")
            .header(&X_FORWARDED_HOST, "bank.example.org")
            .body(())
            .unwrap();
        assert_eq!(upstream(&mut claims), expected);
        // A Connection header naming Host or X-Forwarded-For takes neither away.
        let mut claims = Request::builder()
            .header(header::HOST, "a.notes.example.com")
            .header(header::CONNECTION, "host, x-forwarded-for")
            .header(&X_FORWARDED_FOR, "192.0.2.7")
            .header(&X_FORWARDED_PROTO, "https")
            .header(&X_FORWARDED_HOST, "bank.example.org")
            .body(())
            .unwrap();
        assert_eq!(upstream(&mut claims), expected);
        // No Host (HTTP/1.0): the routed host.
        let mut bare = Request::builder().body(()).unwrap();
        assert_eq!(upstream(&mut bare), expected);
    }

    #[test]
    fn a_trusted_proxys_forwarded_headers_are_kept_unless_they_are_hop_by_hop() {
        let peer = Peer::new("127.0.0.1:5000".parse().unwrap(), true);
        let forwarded = |request: &mut Request<()>| -> Vec<String> {
            to_upstream(request, &peer, "a.notes.example.com", false);
            [&X_FORWARDED_FOR, &X_FORWARDED_PROTO, &X_FORWARDED_HOST]
                .into_iter()
                .map(|name| format!("{name}: {}", request.headers()[name].to_str().unwrap()))
                .collect()
        };
        let proxied = || {
            Request::builder()
                .header(header::HOST, "a.notes.example.com")
                .header(&X_FORWARDED_FOR, "203.0.113.9")
                .header(&X_FORWARDED_PROTO, "https")
                .header(&X_FORWARDED_HOST, "a.notes.example.com")
        };
        assert_eq!(
            forwarded(&mut proxied().body(()).unwrap()),
            [
                "x-forwarded-for: 203.0.113.9, 127.0.0.1",
                "x-forwarded-proto: https",
                "x-forwarded-host: a.notes.example.com",
            ]
        );
        let mut hop = proxied()
            .header(header::CONNECTION, "x-forwarded-for, x-forwarded-proto")
            .body(())
            .unwrap();
        assert_eq!(
            forwarded(&mut hop),
            [
                "x-forwarded-for: 127.0.0.1",
                "x-forwarded-proto: http",
                "x-forwarded-host: a.notes.example.com",
            ]
        );
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&headers));
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
    }
}
