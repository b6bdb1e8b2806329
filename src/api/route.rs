//! The API's routes as data: a request's method and path become one [`Route`] (or none: 404),
//! and every route says what it needs of the token ([`Route::need`], an exhaustive match, so
//! a route cannot be added without deciding its scope). The handlers dispatch on the same
//! enum. Pure: no I/O.

use hyper::Method;

use crate::names::{InstanceKey, KeyError};

use super::scope::{Need, decode_key};

/// The instance a route names: a key, or why the path's text is not one (400, once the token
/// may reach the route at all).
pub(crate) type Key = Result<InstanceKey, KeyError>;

/// Every route of the control API, under `/api/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET status`
    Status,
    /// `GET plan`
    Plan,
    /// `POST apply`
    Apply,
    /// `GET instances`
    Instances,
    /// `POST instances/spawn`
    Spawn,
    /// `GET instances/{S:ID}`
    Instance(Key),
    /// `DELETE instances/{S:ID}`
    Remove(Key),
    /// `POST instances/{S:ID}/stop`
    Stop(Key),
    /// `POST instances/{S:ID}/start`
    Start(Key),
    /// `POST instances/{S:ID}/restart`
    Restart(Key),
    /// `GET instances/{S:ID}/health`
    Health(Key),
    /// `PUT instances/{S:ID}/weight`
    Weight(Key),
    /// `POST deploy`
    Deploy,
    /// `POST route`
    Reroute,
    /// `POST tokens`
    Tokens,
    /// `GET logs?instance=S:ID|service=S|group=G&search=TEXT&since=T&until=T&level=STREAM&limit=N`:
    /// a JSON array of `{at_unix_ms, instance, stream, text}`, oldest first. `since` and
    /// `until` are a duration before now (`2h`), a UTC time or Unix milliseconds; with either,
    /// or `search`, or a `limit` above the 2,000 lines kept in memory, the lines kept on disk
    /// are read (the last `limit` that match, 1,000 unless given, at most 100,000).
    Logs,
    /// `GET logs/stream`, with the parameters of `logs` (but `limit`): new lines as
    /// server-sent events.
    LogStream,
    /// `GET events?instance=S:ID|service=S|group=G&limit=N`: a JSON array of events, oldest
    /// first (the last `limit`, 100 unless given; a `limit` that is not a count is a 400, as
    /// for `logs`); of a service or group, those of its instances (none about ten itself).
    Events,
    /// `GET events/stream`, with the parameters of `events` (but `limit`): new events as
    /// server-sent events.
    EventStream,
    /// `GET certs`
    Certs,
    /// `POST instances/stop`: every instance a selector means.
    BulkStop,
    /// `POST instances/start`
    BulkStart,
    /// `POST instances/restart`
    BulkRestart,
}

impl Route {
    /// The route of `method /api/{segments}`, if there is one.
    pub(crate) fn parse(method: &Method, segments: &[&str]) -> Option<Route> {
        let keyed = |make: fn(Key) -> Route, key: &str| make(decode_key(key));
        let route = match (method, segments) {
            (&Method::GET, ["status"]) => Route::Status,
            (&Method::GET, ["plan"]) => Route::Plan,
            (&Method::POST, ["apply"]) => Route::Apply,
            (&Method::GET, ["instances"]) => Route::Instances,
            (&Method::POST, ["instances", "spawn"]) => Route::Spawn,
            (&Method::POST, ["instances", "stop"]) => Route::BulkStop,
            (&Method::POST, ["instances", "start"]) => Route::BulkStart,
            (&Method::POST, ["instances", "restart"]) => Route::BulkRestart,
            (&Method::GET, ["instances", key]) => keyed(Route::Instance, key),
            (&Method::DELETE, ["instances", key]) => keyed(Route::Remove, key),
            (&Method::POST, ["instances", key, "stop"]) => keyed(Route::Stop, key),
            (&Method::POST, ["instances", key, "start"]) => keyed(Route::Start, key),
            (&Method::POST, ["instances", key, "restart"]) => keyed(Route::Restart, key),
            (&Method::GET, ["instances", key, "health"]) => keyed(Route::Health, key),
            (&Method::PUT, ["instances", key, "weight"]) => keyed(Route::Weight, key),
            (&Method::POST, ["deploy"]) => Route::Deploy,
            (&Method::POST, ["route"]) => Route::Reroute,
            (&Method::POST, ["tokens"]) => Route::Tokens,
            (&Method::GET, ["logs"]) => Route::Logs,
            (&Method::GET, ["logs", "stream"]) => Route::LogStream,
            (&Method::GET, ["events"]) => Route::Events,
            (&Method::GET, ["events", "stream"]) => Route::EventStream,
            (&Method::GET, ["certs"]) => Route::Certs,
            _ => return None,
        };
        Some(route)
    }

    /// What the route needs of the token. Everything that changes or reveals more than one
    /// instance is the admin's; a tenant token reaches its own instance's reads, health and
    /// restart, and listings, logs and events narrowed to it.
    pub(crate) fn need(&self) -> Need {
        match self {
            Route::Instance(Ok(key)) | Route::Health(Ok(key)) | Route::Restart(Ok(key)) => {
                Need::Instance(key.clone())
            }
            // Not an instance's own route until it names one.
            Route::Instance(Err(_)) | Route::Health(Err(_)) | Route::Restart(Err(_)) => Need::Admin,
            Route::Instances
            | Route::Logs
            | Route::LogStream
            | Route::Events
            | Route::EventStream => Need::Narrowed,
            Route::Status
            | Route::Plan
            | Route::Apply
            | Route::Spawn
            | Route::Remove(_)
            | Route::Stop(_)
            | Route::Start(_)
            | Route::Weight(_)
            | Route::Deploy
            | Route::Reroute
            | Route::Tokens
            | Route::Certs
            | Route::BulkStop
            | Route::BulkStart
            | Route::BulkRestart => Need::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::scope::{Scope, authorize};

    fn key(text: &str) -> InstanceKey {
        InstanceKey::parse(text).unwrap()
    }

    fn route(method: &Method, path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.split('/').collect();
        Route::parse(method, &segments)
    }

    /// Every route of the API, with what it needs. A route added to `Route` must be added
    /// here too, or `every_variant_is_listed` fails.
    fn table() -> Vec<(Method, &'static str, Route, Need)> {
        let alice = || Ok(key("notes:alice"));
        vec![
            (Method::GET, "status", Route::Status, Need::Admin),
            (Method::GET, "plan", Route::Plan, Need::Admin),
            (Method::POST, "apply", Route::Apply, Need::Admin),
            (Method::GET, "instances", Route::Instances, Need::Narrowed),
            (Method::POST, "instances/spawn", Route::Spawn, Need::Admin),
            (
                Method::GET,
                "instances/notes:alice",
                Route::Instance(alice()),
                Need::Instance(key("notes:alice")),
            ),
            (
                Method::DELETE,
                "instances/notes:alice",
                Route::Remove(alice()),
                Need::Admin,
            ),
            (
                Method::POST,
                "instances/notes:alice/stop",
                Route::Stop(alice()),
                Need::Admin,
            ),
            (
                Method::POST,
                "instances/notes%3Aalice/start",
                Route::Start(alice()),
                Need::Admin,
            ),
            (
                Method::POST,
                "instances/notes:alice/restart",
                Route::Restart(alice()),
                Need::Instance(key("notes:alice")),
            ),
            (
                Method::GET,
                "instances/notes:alice/health",
                Route::Health(alice()),
                Need::Instance(key("notes:alice")),
            ),
            (
                Method::PUT,
                "instances/notes:alice/weight",
                Route::Weight(alice()),
                Need::Admin,
            ),
            (Method::POST, "deploy", Route::Deploy, Need::Admin),
            (Method::POST, "route", Route::Reroute, Need::Admin),
            (Method::POST, "tokens", Route::Tokens, Need::Admin),
            (Method::GET, "logs", Route::Logs, Need::Narrowed),
            (Method::GET, "logs/stream", Route::LogStream, Need::Narrowed),
            (Method::GET, "events", Route::Events, Need::Narrowed),
            (
                Method::GET,
                "events/stream",
                Route::EventStream,
                Need::Narrowed,
            ),
            (Method::GET, "certs", Route::Certs, Need::Admin),
            (Method::POST, "instances/stop", Route::BulkStop, Need::Admin),
            (
                Method::POST,
                "instances/start",
                Route::BulkStart,
                Need::Admin,
            ),
            (
                Method::POST,
                "instances/restart",
                Route::BulkRestart,
                Need::Admin,
            ),
        ]
    }

    #[test]
    fn every_route_has_its_scope() {
        for (method, path, expected, need) in table() {
            let parsed = route(&method, path);
            assert_eq!(parsed.as_ref(), Some(&expected), "{method} {path}");
            assert_eq!(expected.need(), need, "{method} {path}");
        }
    }

    #[test]
    fn every_variant_is_listed() {
        // An exhaustive match: a new variant does not compile until it is counted here, and
        // the count must then match the table above.
        let index = |route: &Route| match route {
            Route::Status => 0,
            Route::Plan => 1,
            Route::Apply => 2,
            Route::Instances => 3,
            Route::Spawn => 4,
            Route::Instance(_) => 5,
            Route::Remove(_) => 6,
            Route::Stop(_) => 7,
            Route::Start(_) => 8,
            Route::Restart(_) => 9,
            Route::Health(_) => 10,
            Route::Weight(_) => 11,
            Route::Deploy => 12,
            Route::Reroute => 13,
            Route::Tokens => 14,
            Route::Logs => 15,
            Route::LogStream => 16,
            Route::Events => 17,
            Route::EventStream => 18,
            Route::Certs => 19,
            Route::BulkStop => 20,
            Route::BulkStart => 21,
            Route::BulkRestart => 22,
        };
        let mut seen: Vec<usize> = table()
            .iter()
            .map(|(_, _, route, _)| index(route))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..=22).collect::<Vec<_>>());
    }

    #[test]
    fn a_tenant_token_reaches_only_its_own_instance_and_narrowed_reads() {
        let scope = Scope::Tenant(key("notes:alice"));
        let may = |method: Method, path: &str| {
            let need = route(&method, path).expect("a route").need();
            authorize(&scope, &need, &method, path).map_err(|error| error.status)
        };
        for (method, path) in [
            (Method::GET, "instances"),
            (Method::GET, "instances/notes:alice"),
            (Method::GET, "instances/notes:alice/health"),
            (Method::POST, "instances/notes:alice/restart"),
            (Method::GET, "logs"),
            (Method::GET, "logs/stream"),
            (Method::GET, "events"),
            (Method::GET, "events/stream"),
        ] {
            assert_eq!(may(method.clone(), path), Ok(()), "{method} {path}");
        }
        for (method, path, _, _) in table() {
            let reaches = may(method.clone(), path).is_ok();
            let own_or_narrowed = matches!(
                route(&method, path).unwrap().need(),
                Need::Narrowed | Need::Instance(_)
            );
            assert_eq!(reaches, own_or_narrowed, "{method} {path}");
        }
        for (method, path) in [
            (Method::GET, "instances/notes:bob"),
            (Method::GET, "instances/notes:bob/health"),
            (Method::POST, "instances/notes:bob/restart"),
        ] {
            assert_eq!(may(method.clone(), path), Err(403), "{method} {path}");
        }
    }

    #[test]
    fn an_admin_token_reaches_every_route() {
        // Every route as a request names it (those naming no instance too: admin-only). An
        // admin token passes each, also every one that another tenant's token is refused.
        let bob = Scope::Tenant(key("notes:bob"));
        let mut requests: Vec<(Method, &str)> = table()
            .into_iter()
            .map(|(method, path, _, _)| (method, path))
            .collect();
        requests.extend([
            (Method::GET, "instances/Bad_Key"),
            (Method::GET, "instances/Bad_Key/health"),
            (Method::POST, "instances/Bad_Key/restart"),
        ]);
        let mut refused_to_bob = 0;
        for (method, path) in &requests {
            let need = route(method, path).expect("a route").need();
            assert_eq!(
                authorize(&Scope::Admin, &need, method, path).map_err(|error| error.status),
                Ok(()),
                "{method} {path}"
            );
            match authorize(&bob, &need, method, path) {
                Ok(()) => assert_eq!(need, Need::Narrowed, "{method} {path}"),
                Err(error) => {
                    assert_eq!(error.status, 403, "{method} {path}");
                    refused_to_bob += 1;
                }
            }
        }
        let narrowed = table()
            .iter()
            .filter(|(_, _, _, need)| *need == Need::Narrowed)
            .count();
        assert_eq!(refused_to_bob, requests.len() - narrowed);
    }

    #[test]
    fn anything_else_is_no_route() {
        for (method, path) in [
            (Method::GET, "nothing/here"),
            (Method::POST, "status"),
            (Method::GET, "instances/notes:alice/stop"),
            (Method::PATCH, "instances/notes:alice"),
            (Method::GET, "instances/notes:alice/health/more"),
            (Method::POST, "instances/stop/all"),
            (Method::GET, ""),
        ] {
            assert_eq!(route(&method, path), None, "{method} {path}");
        }
        // A path that names no instance reaches the route's handler only with an admin token
        // (it answers 400 then).
        let bad = Route::parse(&Method::GET, &["instances", "Bad_Key", "health"]).unwrap();
        assert!(matches!(bad, Route::Health(Err(_))));
        assert_eq!(bad.need(), Need::Admin);
    }
}
