//! The control API's routes (`/api/...`). Handlers ask the reconciler (messages, never locks)
//! and edit instance files for the commands that change what is declared (`spawn`, `stop`,
//! `start`, `rm`), so the files stay the single source of truth.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::body::{Body, json};
use crate::config::RunState;
use crate::names::InstanceKey;
use crate::reconcile::Call;

use super::auth::refusal;
use super::error::{CallError, bad_key, bad_request, failure, not_found};
use super::route::Route;
use super::scope::{Scope, authorize};
use super::settle::{Goal, settle};
use super::state::ApiState;
use super::streams::limit_of;
use super::types::{
    ActionResult, ApplyRequest, BulkRequest, DeployRequest, HealthReport, HealthVerdict,
    InstanceView, RestartRequest, RouteRequest, SpawnRequest, TokenRequest, TokenResponse,
    WeightRequest,
};
use super::views;

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// The events `GET events` answers without a `limit`.
const DEFAULT_EVENTS: usize = 100;

type Reply = Response<Body>;

impl ApiState {
    pub(crate) async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        client: IpAddr,
    ) -> Reply {
        let scope = match self.authenticate(request.headers(), client) {
            Ok(scope) => scope,
            Err(refused) => return refusal(refused),
        };
        self.dispatch(scope, request).await
    }

    /// The answer to `request` for a token of `scope` (already checked): the route, its
    /// scope's check, its handler. The dashboard calls it for a session's scope.
    pub(crate) async fn dispatch<B>(self: Arc<Self>, scope: Scope, request: Request<B>) -> Reply
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<crate::body::BoxError>,
    {
        let method = request.method().clone();
        let path = request
            .uri()
            .path()
            .trim_start_matches("/api")
            .trim_matches('/')
            .to_string();
        let query = parse_query(request.uri().query());
        let segments: Vec<&str> = path.split('/').collect();
        let Some(route) = Route::parse(&method, &segments) else {
            return failure(not_found(&method, &path));
        };
        // Every route says what it needs (`Route::need`, exhaustive): nothing is reachable
        // by a tenant token unless its route says so.
        if let Err(error) = authorize(&scope, &route.need(), &method, &path) {
            return failure(error);
        }
        let result = match route {
            Route::Status => self.status().await.map(|view| json(StatusCode::OK, &view)),
            Route::Certs => Ok(json(StatusCode::OK, &self.certs())),
            Route::Plan => self
                .ask(Call::Plan)
                .await
                .map(|report| json(StatusCode::OK, &views::plan_view(report))),
            Route::Apply => match read_json::<ApplyRequest>(request).await {
                Ok(apply) => self.apply(apply).await,
                Err(error) => Err(error),
            },
            Route::Instances => self.selected_views(query.get("select")).await.map(|views| {
                let views: Vec<InstanceView> = views
                    .into_iter()
                    .filter(|view| scope.sees(&view.instance))
                    .collect();
                json(StatusCode::OK, &views)
            }),
            Route::Spawn => match read_json::<SpawnRequest>(request).await {
                Ok(spawn) => match InstanceKey::parse(&format!("{}:{}", spawn.process, spawn.id)) {
                    Ok(key) => self.declare(key).await,
                    Err(error) => Err(bad_request(error.to_string())),
                },
                Err(error) => Err(error),
            },
            Route::Instance(key) => match key {
                Ok(key) => self.instance(&key).await,
                Err(error) => Err(bad_key(error)),
            },
            Route::Remove(key) => match key {
                Ok(key) => Arc::clone(&self).undeclare(key).await,
                Err(error) => Err(bad_key(error)),
            },
            Route::Stop(key) => match key {
                Ok(key) => self.set_state(key, RunState::Stopped).await,
                Err(error) => Err(bad_key(error)),
            },
            Route::Start(key) => match key {
                Ok(key) => self.set_state(key, RunState::Running).await,
                Err(error) => Err(bad_key(error)),
            },
            Route::BulkStop => match read_json::<BulkRequest>(request).await {
                Ok(body) => self.bulk_state(body, RunState::Stopped).await,
                Err(error) => Err(error),
            },
            Route::BulkStart => match read_json::<BulkRequest>(request).await {
                Ok(body) => self.bulk_state(body, RunState::Running).await,
                Err(error) => Err(error),
            },
            Route::BulkRestart => match read_json::<BulkRequest>(request).await {
                Ok(body) => self.bulk_restart(body).await,
                Err(error) => Err(error),
            },
            Route::Restart(key) => match (key, read_json::<RestartRequest>(request).await) {
                (Ok(key), Ok(body)) => self.restart(key, body.force).await,
                (Err(error), _) => Err(bad_key(error)),
                (_, Err(error)) => Err(error),
            },
            Route::Health(key) => match key {
                Ok(key) => self.health(key).await,
                Err(error) => Err(bad_key(error)),
            },
            Route::Weight(key) => match (key, read_json::<WeightRequest>(request).await) {
                (Ok(key), Ok(body)) => self.set_weight(key, body.weight).await,
                (Err(error), _) => Err(bad_key(error)),
                (_, Err(error)) => Err(error),
            },
            Route::Deploy => match read_json::<DeployRequest>(request).await {
                Ok(body) => self.deploy(body).await,
                Err(error) => Err(error),
            },
            Route::Reroute => match read_json::<RouteRequest>(request).await {
                Ok(body) => self.reroute(body).await,
                Err(error) => Err(error),
            },
            Route::Tokens => match read_json::<TokenRequest>(request).await {
                Ok(body) => Arc::clone(&self).issue_token(body).await,
                Err(error) => Err(error),
            },
            Route::Logs => match self.log_query_of(&query, &scope).await {
                Ok(query) => self.recent_logs(query).await,
                Err(error) => Err(error),
            },
            Route::LogStream => self
                .log_query_of(&query, &scope)
                .await
                .map(|query| self.follow_logs(query)),
            Route::Events => match limit_of(&query, "events", None) {
                Ok(limit) => self.event_filter_of(&query, &scope).await.map(|filter| {
                    let limit = limit.unwrap_or(DEFAULT_EVENTS);
                    json(StatusCode::OK, &self.events.recent(&filter, limit))
                }),
                Err(error) => Err(error),
            },
            Route::EventStream => self
                .event_filter_of(&query, &scope)
                .await
                .map(|filter| self.follow_events(filter)),
        };
        result.unwrap_or_else(failure)
    }

    /// `ten token-gen [--tenant S:ID]`: a new token, valid at once; for a tenant, only for a
    /// declared instance.
    pub(super) async fn issue_token(
        self: Arc<Self>,
        request: TokenRequest,
    ) -> Result<Reply, CallError> {
        let scope = match request.tenant {
            Some(key) => {
                self.must_be_declared(&key).await.map_err(|error| {
                    CallError::new(
                        error.status,
                        format!("{key} is not declared, so it cannot have a tenant token"),
                    )
                    .hint(format!("declare it first: `ten spawn {key}`"))
                })?;
                Scope::Tenant(key)
            }
            None => Scope::Admin,
        };
        let state = Arc::clone(&self);
        let issued = tokio::task::spawn_blocking(move || state.auth.issue(&scope))
            .await
            .map_err(|error| CallError::new(500, format!("making the token failed: {error}")))?
            .map_err(|error| CallError::new(500, format!("cannot make the token: {error}")))?;
        Ok(json(StatusCode::OK, &TokenResponse::from(issued)))
    }

    pub(super) async fn instance(&self, key: &InstanceKey) -> Result<Reply, CallError> {
        let views = self.views().await?;
        views
            .into_iter()
            .find(|view| view.instance == *key)
            .map(|view| json(StatusCode::OK, &view))
            .ok_or_else(|| CallError::new(404, format!("{key} is not declared")))
    }

    pub(super) async fn restart(&self, key: InstanceKey, force: bool) -> Result<Reply, CallError> {
        let view = self.view(&key).await;
        if view
            .as_ref()
            .is_some_and(|view| view.state == Some(crate::config::RunState::Stopped))
        {
            // As `ten restart --all` leaves it: nothing runs to restart, and the file says so.
            return Err(CallError::new(
                409,
                format!(
                    "{key} is declared stopped (state = \"stopped\" in its file): not restarted"
                ),
            )
            .hint(format!("`ten start {key}` starts it")));
        }
        let old_pid = view.and_then(|view| view.pid);
        match self
            .restart_and_wait(&key, force, old_pid, Duration::from_secs(60))
            .await?
        {
            Ok(done) => Ok(json(
                StatusCode::OK,
                &ActionResult {
                    message: format!("restarted: {done}"),
                    file: None,
                    view: self.view(&key).await,
                    instance: key,
                },
            )),
            Err(problem) => Err(CallError::new(
                502,
                format!("restart of {key} did not work out: {problem}"),
            )
            .hint(format!("see `ten logs {key}`"))),
        }
    }

    /// Restarts `key` (a sleeping one starts) and waits, at most `timeout`, until it runs
    /// with a process other than `old_pid`: how it went, or why it did not.
    pub(super) async fn restart_and_wait(
        &self,
        key: &InstanceKey,
        force: bool,
        old_pid: Option<u32>,
        timeout: Duration,
    ) -> Result<Result<String, String>, CallError> {
        let status = self
            .ask(|reply| Call::Restart {
                key: key.clone(),
                force,
                reply,
            })
            .await??;
        Ok(settle(Some(status), Goal::Running { old_pid }, timeout).await)
    }

    pub(super) async fn health(&self, key: InstanceKey) -> Result<Reply, CallError> {
        if let Some(view) = self
            .view(&key)
            .await
            .filter(|view| view.phase == crate::observed::Phase::Sleeping)
        {
            // A wake that failed (or a sleep for memory) is said with it.
            let why = view
                .note
                .as_ref()
                .map(|note| format!(" ({note})"))
                .unwrap_or_default();
            return Ok(json(
                StatusCode::OK,
                &HealthReport {
                    note: view.note,
                    message: format!("{key} is {}{why}", super::settle::SLEEPING),
                    instance: key,
                    healthy: false,
                    status: HealthVerdict::Sleeping,
                },
            ));
        }
        let result = self
            .ask(|reply| Call::CheckHealth {
                key: key.clone(),
                reply,
            })
            .await??;
        let outcome = result
            .await
            .unwrap_or_else(|_| Err("the check was abandoned".into()));
        let report = HealthReport {
            note: None,
            instance: key,
            healthy: outcome.is_ok(),
            status: if outcome.is_ok() {
                HealthVerdict::Healthy
            } else {
                HealthVerdict::Unhealthy
            },
            message: outcome.err().unwrap_or_else(|| "healthy".into()),
        };
        Ok(json(StatusCode::OK, &report))
    }
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// Reads a JSON body; an empty body (or `null`) reads as `{}`.
pub(super) async fn read_json<T: DeserializeOwned>(
    request: Request<impl hyper::body::Body<Error: Into<crate::body::BoxError>>>,
) -> Result<T, CallError> {
    let limited = http_body_util::Limited::new(request.into_body(), MAX_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|error| bad_request(format!("cannot read the request body: {error}")))?
        .to_bytes();
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null"
    {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|error| bad_request(format!("invalid JSON body: {error}")))
}
