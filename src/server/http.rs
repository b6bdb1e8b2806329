//! The one listening port: requests are routed by Host (see `proxy::routes`). Tenant hosts
//! (`ID.SERVICE.DOMAIN`, `SERVICE.DOMAIN`, `[routing]`) go to the proxy; the root domain (or an
//! IP address, or `localhost`) serves `/health`, the control API under `/api/`, `/metrics`
//! and the dashboard, on ten's main runtime (the proxy workers' have no timer). The API and
//! `/metrics` see the client's address (for the limit on failed token checks): the TCP peer,
//! or, from a trusted proxy (`trusted_proxies`), the client its `X-Forwarded-For` names.

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::connection::{self, Admitted, Caps, Clock, Tracked, Watched};
use crate::api::state::ApiState;
use crate::body::{self, Body};
use crate::config::ConnectionLimits;
use crate::dashboard::{self, Dashboard};
use crate::proxy::timers::Timers;
use crate::proxy::{Peer, Proxy, Routed};

pub(crate) struct Router {
    pub api: Arc<ApiState>,
    /// The dashboard (shared by every worker: one store of sessions).
    pub dashboard: Arc<Dashboard>,
    pub proxy: Proxy,
    /// The open client connections of every worker, against the caps of the settings.
    pub caps: Arc<Caps>,
    /// The runtime that serves ten's own pages: ten's main one, with a timer (the API waits
    /// with timeouts), where a proxy worker has none.
    pub control: tokio::runtime::Handle,
}

/// `raw` without port or trailing dot, lowercased; borrowed when it already is.
pub(crate) fn bare_host(raw: &str) -> Cow<'_, str> {
    // Bytes, not char searches, and one pass for the usual host: this runs for every request.
    // Every position found is that of an ASCII byte, so the slices below are `str`s.
    // `capitals`: whether the host may have some (checked again only if so).
    let bytes = raw.as_bytes();
    let (start, mut end, capitals) = if bytes.first() == Some(&b'[') {
        let close = bytes.iter().position(|&byte| byte == b']');
        (1, close.unwrap_or(bytes.len()), true)
    } else {
        let (mut colon, mut capitals) = (bytes.len(), false);
        for (index, &byte) in bytes.iter().enumerate() {
            if byte == b':' {
                colon = index;
            }
            capitals |= byte.is_ascii_uppercase();
        }
        (0, colon, capitals)
    };
    while end > start && bytes[end - 1] == b'.' {
        end -= 1;
    }
    let host = &raw[start..end];
    if capitals && host.bytes().any(|byte| byte.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// `host:port` of an authority, without a `user@` before it.
fn authority_without_userinfo(authority: &hyper::http::uri::Authority) -> &str {
    let text = authority.as_str();
    text.rsplit_once('@').map_or(text, |(_, host)| host)
}

impl Router {
    /// The answer to `request`: routing is done here, at once; what is left to wait for is
    /// the returned future, which owns what it needs. For a tenant it is `Proxy::forward`'s
    /// alone (no async layer of ten's around it), since hyper keeps one allocated for each open
    /// connection and moves each request's into place.
    pub(crate) fn serve(
        self: &Arc<Self>,
        request: Request<Incoming>,
        peer: &Peer,
    ) -> impl Future<Output = Response<Body>> + Send + use<> {
        let mut request = request;
        // RFC 9112 3.2: one Host, or none; two are refused (which of them would count?). The
        // request moves on, so the host is read from a copy of the header (which shares the
        // header's bytes), taken in the same lookup.
        let mut hosts = request.headers().get_all(header::HOST).iter();
        let mut host_header = hosts.next().cloned();
        if host_header.is_some() && hosts.next().is_some() {
            return Either::Right(Either::Left(std::future::ready(crate::proxy::bad_request(
                "a request names one Host",
            ))));
        }
        // An absolute-form target (`GET http://bob.notes.example.com/`) names the host, and
        // it wins over the Host header (RFC 9112 3.2.2): the request is routed by it, and
        // the backend gets it as its Host, in lower case as names are routed.
        if let Some(authority) = request.uri().authority().map(authority_without_userinfo)
            && let Ok(value) = header::HeaderValue::from_str(&authority.to_ascii_lowercase())
        {
            request.headers_mut().insert(header::HOST, value.clone());
            host_header = Some(value);
        }
        // The host is its `Host` header's, else its target's; only a request without one has
        // its host copied out.
        let host = match host_header.as_ref().and_then(|value| value.to_str().ok()) {
            Some(raw) => bare_host(raw),
            None => Cow::Owned(bare_host(request.uri().host().unwrap_or("")).into_owned()),
        };
        match self.proxy.route(request, &host) {
            Routed::Forward(route, service, request) => {
                Either::Left(self.proxy.forward(route, service, request, peer, &host))
            }
            Routed::Done(response) => Either::Right(Either::Left(std::future::ready(response))),
            Routed::Own(request) => {
                let router = Arc::clone(self);
                let client = dashboard::Client {
                    address: self.proxy.client(peer, request.headers()),
                    secure: peer.is_secure(),
                };
                let mut answer = OwnPage(
                    self.control
                        .spawn(async move { router.own(request, client).await }),
                );
                Either::Right(Either::Right(async move {
                    (&mut answer.0).await.unwrap_or_else(|error| {
                        if error.is_cancelled() {
                            return body::text(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "ten is shutting down",
                            );
                        }
                        tracing::error!(%error, "serving ten's own page failed");
                        body::text(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "ten failed to answer this request (its log says why)",
                        )
                    })
                }))
            }
        }
    }

    /// `/health`: ten is up, and which config it serves.
    fn health(&self) -> Response<Body> {
        let health = crate::api::types::HealthBody {
            status: "ok".into(),
            config: Some(self.api.config_id.clone()),
        };
        body::json(StatusCode::OK, &health)
    }

    /// ten's own pages: `/health`, the API, `/metrics`, and every other path the dashboard's.
    /// `client`: whom failed token checks are counted against, and whether it came over TLS.
    async fn own(&self, request: Request<Incoming>, client: dashboard::Client) -> Response<Body> {
        let path = request.uri().path();
        if path == "/health" {
            return self.health();
        }
        if path == "/api" || path.starts_with("/api/") {
            return Arc::clone(&self.api).handle(request, client.address).await;
        }
        if path == "/metrics" {
            let public = self.proxy.public_metrics();
            return self
                .api
                .metrics(request.headers(), client.address, public)
                .await;
        }
        self.dashboard.serve(request, client).await
    }
}

/// One of ten's own pages, being answered on the control runtime. It is aborted if the
/// answer is no longer awaited (its client went away), as its future would be dropped if it
/// ran on the worker.
struct OwnPage(tokio::task::JoinHandle<Response<Body>>);

impl Drop for OwnPage {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The listening sockets, one of each per worker: the plain port (`--port`), and with HTTPS
/// its port and the port that redirects to it.
pub(crate) struct Listeners {
    pub plain: Vec<std::net::TcpListener>,
    pub https: Vec<std::net::TcpListener>,
    pub redirect: Vec<std::net::TcpListener>,
}

/// What a listening socket serves.
#[derive(Clone)]
enum Front {
    /// Plain HTTP/1.1: tenants, and ten's own pages.
    Plain,
    /// The same over TLS, HTTP/2 or HTTP/1.1 as the client prefers.
    Tls(tokio_rustls::TlsAcceptor),
    /// Plain HTTP that redirects to HTTPS on this port (but `/health`).
    Redirect(u16),
}

/// Runs one proxy worker per plain listener, each a thread with a single-threaded runtime:
/// a client connection's task drives the pooled backend connection of its request itself
/// (`proxy::pool`), and each worker has its own backend connections, so requests cross no thread
/// and share no lock (the way nginx's workers do). `router` makes each worker's router. Each
/// worker also runs its pool's upkeep (`Pool::maintain`). A worker's runtime has no timer:
/// the proxy's are kept by a thread of their own (`proxy::timers`), so a worker's event loop
/// waits without a timeout and does no timer upkeep around its waits, and ten's own pages are
/// served on the control runtime (`Router::control`). With HTTPS, each worker also serves
/// one socket of the HTTPS port (`tls` its configuration) and one of the redirecting port
/// (`https_port` where it sends clients).
pub(crate) fn spawn_workers(
    listeners: Listeners,
    tls: Option<(Arc<rustls::ServerConfig>, u16)>,
    router: impl Fn() -> Router,
) -> std::io::Result<()> {
    let mut https = listeners.https.into_iter();
    let mut redirect = listeners.redirect.into_iter();
    for (index, plain) in listeners.plain.into_iter().enumerate() {
        let mut fronts = vec![(plain, Front::Plain)];
        if let Some((config, https_port)) = &tls {
            let acceptor = super::https::acceptor(Arc::clone(config));
            fronts.extend(
                https
                    .next()
                    .map(|listener| (listener, Front::Tls(acceptor))),
            );
            fronts.extend(
                redirect
                    .next()
                    .map(|listener| (listener, Front::Redirect(*https_port))),
            );
        }
        let router = Arc::new(router());
        let pool = router.proxy.pool();
        std::thread::Builder::new()
            .name(format!("ten-proxy-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "cannot start a proxy worker");
                        return;
                    }
                };
                runtime.block_on(async move {
                    tokio::spawn(pool.maintain());
                    let mut loops = Vec::new();
                    for (listener, front) in fronts {
                        match TcpListener::from_std(listener) {
                            Ok(listener) => loops.push(tokio::spawn(accept_loop(
                                listener,
                                Arc::clone(&router),
                                front,
                            ))),
                            Err(error) => {
                                tracing::error!(%error, "cannot use the listening socket");
                            }
                        }
                    }
                    for accepting in loops {
                        let _ = accepting.await;
                    }
                });
            })?;
    }
    Ok(())
}

/// Accepts connections until the listener fails; one task per connection. A connection past
/// `max_connections` or `max_connections_per_client` (of the settings of the moment) is
/// closed at once, and counted.
async fn accept_loop(listener: TcpListener, router: Arc<Router>, front: Front) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                if crate::runtime::probe::out_of_descriptors(&error) {
                    crate::metrics::global()
                        .connections()
                        .descriptors_exhausted();
                }
                tracing::warn!(%error, "accept failed");
                let pause = tokio::time::Instant::now() + std::time::Duration::from_millis(50);
                router.proxy.pool().timers().sleep_until(pause).await;
                continue;
            }
        };
        let limits = router.proxy.connection_limits();
        let admitted = match router.caps.admit(peer.ip(), &limits) {
            Ok(admitted) => admitted,
            Err(cap) => {
                crate::metrics::global().connections().refused(cap);
                tracing::debug!(%peer, ?cap, "connection refused: a cap on connections is reached");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = Arc::clone(&router);
        let clock = Clock::new();
        let timers = router.proxy.pool().timers().clone();
        let stream = Watched::new(stream, Arc::clone(&clock));
        let served = Arc::clone(&clock);
        match &front {
            Front::Plain => tokio::spawn(guarded(
                serve_connection(stream, peer, router, served),
                admitted,
                clock,
                limits,
                timers,
            )),
            Front::Tls(acceptor) => tokio::spawn(guarded(
                serve_tls(acceptor.clone(), stream, peer, router, served),
                admitted,
                clock,
                limits,
                timers,
            )),
            Front::Redirect(port) => tokio::spawn(guarded(
                serve_redirect(*port, stream, peer, router, served),
                admitted,
                clock,
                limits,
                timers,
            )),
        };
    }
}

/// Serves a connection until it ends or passes a deadline (then it is dropped, which closes
/// it); counted among the open ones until then.
async fn guarded(
    serving: impl Future<Output = ()>,
    admitted: Admitted,
    clock: Arc<Clock>,
    limits: ConnectionLimits,
    timers: Timers,
) {
    tokio::select! {
        biased;
        () = serving => {}
        deadline = connection::watch(clock, limits, timers) => {
            crate::metrics::global().connections().timed_out(deadline);
            tracing::debug!(?deadline, "connection closed: it passed a deadline");
        }
    }
    drop(admitted);
}

/// HTTP/1.1 as every connection is served: keep-alive, and half-closed clients answered.
fn http1_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        // A client may shut its side down once it has sent its request, and still gets the
        // answer. It also spares a read while the answer is awaited, which (the request still
        // holding the read buffer) would take a new 8 KB buffer for every request. A client
        // that goes away instead is noticed when its answer is written (bounded by
        // `request_timeout` for the head; a body fails at its next chunk).
        .half_close(true);
    builder
}

/// The response of a request on the connection of `clock`, whose body tells the clock when
/// it has been sent. A named function: with a closure in its place, rustc cannot prove the
/// connection's future `Send` (it infers a shorter lifetime for the body's boxed error type).
fn tracked(
    clock: Arc<Clock>,
) -> impl FnOnce(Response<Body>) -> Result<Response<Tracked>, std::convert::Infallible> {
    move |response| Ok(response.map(|body| Tracked::new(body, clock)))
}

async fn serve_connection(
    stream: Watched<tokio::net::TcpStream>,
    peer: SocketAddr,
    router: Arc<Router>,
    clock: Arc<Clock>,
) {
    // Whether the peer is a trusted proxy is decided once, by the configuration of now.
    let client = router.proxy.peer(peer);
    let service = service_fn(move |request| {
        clock.request_began();
        router
            .serve(request, &client)
            .map(tracked(Arc::clone(&clock)))
    });
    if let Err(error) = http1_builder()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
    {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

/// A connection on the HTTPS port: the handshake, then HTTP/2 or HTTP/1.1 as ALPN chose.
async fn serve_tls(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: Watched<tokio::net::TcpStream>,
    peer: SocketAddr,
    router: Arc<Router>,
    clock: Arc<Clock>,
) {
    let timers = router.proxy.pool().timers().clone();
    let Some(stream) = super::https::handshake(&acceptor, stream, peer, &timers).await else {
        return;
    };
    let client = router.proxy.peer(peer).over_tls();
    let service = service_fn(move |request| {
        clock.request_began();
        router
            .serve(request, &client)
            .map(tracked(Arc::clone(&clock)))
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true).half_close(true);
    if let Err(error) = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, %error, "TLS connection ended with an error");
    }
}

/// A connection on the port that redirects to HTTPS.
async fn serve_redirect(
    https_port: u16,
    stream: Watched<tokio::net::TcpStream>,
    peer: SocketAddr,
    router: Arc<Router>,
    clock: Arc<Clock>,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        clock.request_began();
        let response = if request.uri().path() == "/health" {
            router.health()
        } else {
            super::https::redirect(&request, https_port)
        };
        std::future::ready(tracked(Arc::clone(&clock))(response))
    });
    if let Err(error) = http1_builder()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_and_case() {
        let host = |value: &str| bare_host(value).into_owned();
        assert_eq!(
            host("Alice.Notes.Example.com:8080"),
            "alice.notes.example.com"
        );
        assert_eq!(host("example.com."), "example.com");
        assert_eq!(host("[::1]:8080"), "::1");
        assert_eq!(host("127.0.0.1"), "127.0.0.1");
        assert_eq!(host("alice.notes.localhost"), "alice.notes.localhost");
        assert_eq!(host("Example.COM..:80"), "example.com");
        assert_eq!(host("[::1]"), "::1");
        assert_eq!(host("[::1"), "::1");
        assert_eq!(host("[FE80::1]:80"), "fe80::1");
        assert_eq!(host(""), "");
        assert_eq!(host("["), "");
    }

    #[test]
    fn a_bare_host_is_borrowed_unless_it_must_change() {
        assert!(matches!(
            bare_host("a.notes.localhost"),
            Cow::Borrowed("a.notes.localhost")
        ));
        assert!(matches!(
            bare_host("a.notes.localhost:80"),
            Cow::Borrowed("a.notes.localhost")
        ));
        assert!(
            matches!(bare_host("A.notes.localhost"), Cow::Owned(host) if host == "a.notes.localhost")
        );
    }
}
