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

mod answer;
pub(crate) mod connector;
mod driven;
mod forward;
pub(crate) mod forwarded;
pub(crate) mod pool;
mod refusal;
pub(crate) mod retry;
pub(crate) mod routes;
pub(crate) mod timers;
mod upstream;
mod wake;

pub(crate) use forward::{Proxy, Routed};
pub(crate) use forwarded::Peer;
pub(crate) use refusal::bad_request;
// For `retry` and `wake`, which answer with a refusal.
use refusal::{Refusal, refusal};
