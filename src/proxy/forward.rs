//! The request path: a worker's [`Proxy`] (the route table, its own backend connections),
//! where a request goes ([`Routed`]), and its forwarding to an instance: the gate's lease or a
//! wake, the send, a resend. Starts nothing itself (it asks the gate); imports no `server`,
//! `api` or `reconcile`.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response};

use crate::body::Body;
use crate::metrics::Started;

use super::answer::answer;
use super::forwarded::Peer;
use super::pool::Pool;
use super::refusal::{Refusal, counted, unrouted};
use super::retry::{self, Head, UpstreamBody};
use super::routes::{InstanceRoute, Resolved, RouteTable, ServiceRoute};
use super::timers::Timers;
use super::upstream::{is_upgrade, to_upstream};
use super::wake::acquire;

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
