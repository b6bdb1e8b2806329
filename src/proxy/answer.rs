//! What the client gets of a backend's response: its body streamed while the instance's lease
//! is held (the connection goes back to the pool at the body's end), or an upgraded connection
//! tunnelled; counted. Imports `body`, `metrics` and the gate's `Lease` of ten's; no routing.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::body::{self, Body, BoxError};
use crate::metrics::{ServiceCounters, Started};
use crate::supervisor::gate::Lease;

use super::pool::{Pooled, PooledBody};
use super::retry::UpstreamBody;
use super::upstream::strip_hop_by_hop;

/// What the client gets of the backend's `response`: its body streamed (or the upgraded
/// connection tunnelled), counted: by code, and in its service's `counters`, since it was
/// `started`.
pub(super) fn answer(
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
