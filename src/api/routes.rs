//! The control API's routes (`/api/...`). Handlers ask the reconciler (messages, never locks)
//! and edit instance files for the commands that change what is declared (`spawn`, `stop`,
//! `start`, `rm`), so the files stay the single source of truth.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::config::RunState;
use crate::config::edit::{self, instance_file_path};
use crate::events::EventLog;
use crate::names::InstanceKey;
use crate::reconcile::{Call, CallError, Message};
use crate::runtime::logs::{LogHub, LogQuery, Stream};

use super::auth::{Auth, Refused};
use super::body::{self, Body, json, ndjson_line, sse_event};
use super::route::Route;
use super::scope::{Filter, Scope, authorize, decode_key};
use super::settle::{Goal, settle};
use super::types::{
    ActionResult, ApplyProgress, ApplyRequest, DeployRequest, ErrorBody, HealthReport,
    HealthVerdict, InstanceView, RouteRequest, SpawnRequest, StatusView, TokenRequest,
    TokenResponse, WeightRequest,
};

/// An instance file to edit: where it is, and what its new text must pass.
struct Editable {
    path: PathBuf,
    check: Box<edit::CheckFn>,
}

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

pub struct ApiState {
    /// Which config this server serves (`server::config_id`), for `/health`.
    pub config_id: String,
    pub reconciler: mpsc::Sender<Message>,
    pub logs: Arc<LogHub>,
    pub events: EventLog,
    pub auth: Auth,
}

type Reply = Response<Body>;

pub(super) fn failure(error: CallError) -> Reply {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        status,
        &ErrorBody {
            error: error.message,
            hint: error.hint,
            diagnostics: error.diagnostics,
        },
    )
}

fn bad_request(message: impl Into<String>) -> CallError {
    CallError::new(400, message)
}

fn bad_key(error: crate::names::KeyError) -> CallError {
    bad_request(error.to_string())
}

impl ApiState {
    /// Asks the reconciler and waits for its answer.
    pub(super) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Call,
    ) -> Result<T, CallError> {
        let (sender, receiver) = oneshot::channel();
        self.reconciler
            .send(Message::Call(make(sender)))
            .await
            .map_err(|_| CallError::new(503, "ten is shutting down"))?;
        receiver
            .await
            .map_err(|_| CallError::new(503, "ten is shutting down"))
    }

    /// The bearer token's scope, or why the request is refused (see `refusal`).
    pub fn authenticate(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<Scope, Refused> {
        self.auth
            .authenticate(headers, peer.ip(), std::time::Instant::now())
    }

    pub async fn handle(self: Arc<Self>, request: Request<Incoming>, peer: SocketAddr) -> Reply {
        let scope = match self.authenticate(request.headers(), peer) {
            Ok(scope) => scope,
            Err(refused) => return refusal(refused),
        };
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
            Route::Status => self
                .ask(Call::Status)
                .await
                .map(|view| json(StatusCode::OK, &view)),
            Route::Plan => self
                .ask(Call::Plan)
                .await
                .map(|view| json(StatusCode::OK, &view)),
            Route::Apply => match read_json::<ApplyRequest>(request).await {
                Ok(apply) => self.apply(apply).await,
                Err(error) => Err(error),
            },
            Route::Instances => self.ask(Call::Instances).await.map(|views| {
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
            Route::Restart(key) => match key {
                Ok(key) => self.restart(key).await,
                Err(error) => Err(bad_key(error)),
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
            Route::Logs => log_query(&query, &scope)
                .map(|query| json(StatusCode::OK, &self.logs.query(&query))),
            Route::LogStream => log_query(&query, &scope).map(|query| self.follow_logs(query)),
            Route::Events => event_filter(&query, &scope).map(|instance| {
                let limit = query
                    .get("limit")
                    .and_then(|limit| limit.parse().ok())
                    .unwrap_or(100);
                json(
                    StatusCode::OK,
                    &self.events.recent(instance.as_ref(), limit),
                )
            }),
            Route::EventStream => {
                event_filter(&query, &scope).map(|instance| self.follow_events(instance))
            }
        };
        result.unwrap_or_else(failure)
    }

    /// `ten token-gen [--tenant S:ID]`: a new token, valid at once; for a tenant, only for a
    /// declared instance.
    async fn issue_token(self: Arc<Self>, request: TokenRequest) -> Result<Reply, CallError> {
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

    async fn status(&self) -> Result<StatusView, CallError> {
        self.ask(Call::Status).await
    }

    async fn instance(&self, key: &InstanceKey) -> Result<Reply, CallError> {
        let views = self.ask(Call::Instances).await?;
        views
            .into_iter()
            .find(|view| view.instance == *key)
            .map(|view| json(StatusCode::OK, &view))
            .ok_or_else(|| CallError::new(404, format!("{key} is not declared")))
    }

    async fn view(&self, key: &InstanceKey) -> Option<InstanceView> {
        let views = self.ask(Call::Instances).await.ok()?;
        views.into_iter().find(|view| view.instance == *key)
    }

    async fn must_be_declared(&self, key: &InstanceKey) -> Result<(), CallError> {
        match self.view(key).await {
            Some(view) if view.state.is_some() => Ok(()),
            _ => Err(CallError::new(404, format!("{key} is not declared"))
                .hint(format!("declare it with `ten spawn {key}`"))),
        }
    }

    fn instance_file(&self, status: &StatusView, key: &InstanceKey) -> PathBuf {
        instance_file_path(std::path::Path::new(&status.instances_dir), key)
    }

    /// Edits instance files off the async runtime. `change` gets, for an instance, its
    /// file's path and the check its new text must pass (nothing invalid is written).
    async fn edit<T: Send + 'static>(
        &self,
        status: &StatusView,
        change: impl FnOnce(&dyn Fn(&InstanceKey) -> Editable) -> Result<T, edit::EditError>
        + Send
        + 'static,
    ) -> Result<T, CallError> {
        let config = PathBuf::from(&status.config);
        let instances_dir = PathBuf::from(&status.instances_dir);
        let editable = move |key: &InstanceKey| Editable {
            path: instance_file_path(&instances_dir, key),
            check: Box::new(crate::desired::instance_file_check(&config, key)),
        };
        match tokio::task::spawn_blocking(move || change(&editable)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(edit::EditError::Refused { path, diagnostics })) => Err(CallError {
                status: 400,
                message: edit::EditError::Refused {
                    path,
                    diagnostics: Vec::new(),
                }
                .to_string(),
                hint: Some(
                    "`ten validate` shows what the files may hold; services are declared in tenement.toml"
                        .into(),
                ),
                diagnostics,
            }),
            Ok(Err(error)) => Err(CallError::new(409, error.to_string())),
            Err(error) => Err(CallError::new(500, format!("edit failed: {error}"))),
        }
    }

    /// Reloads the files now and waits until `key` reaches `goal`.
    async fn converge(
        &self,
        key: &InstanceKey,
        goal: Goal,
        file: String,
        what: &str,
    ) -> Result<Reply, CallError> {
        let status = self.ask(Call::Reload).await?;
        if !status.valid
            && !status.frozen.contains(key)
            && status.diagnostics.iter().any(|d| d.is_error())
        {
            return Err(CallError {
                status: 409,
                message: format!("{what}, but the files have errors, so nothing changed yet"),
                hint: Some("fix them (`ten validate` shows where); the change applies as soon as they are valid".into()),
                diagnostics: status.diagnostics,
            });
        }
        if let Some(held) = status.held {
            let view = self.view(key).await;
            return Ok(json(
                StatusCode::ACCEPTED,
                &ActionResult {
                    instance: key.clone(),
                    message: format!("{what}; not applied yet: {held}"),
                    file: Some(file),
                    view,
                },
            ));
        }
        let watch = self
            .ask(|reply| Call::Watch {
                key: key.clone(),
                reply,
            })
            .await?;
        let timeout = Duration::from_secs(60);
        let outcome = settle(watch, goal, timeout).await;
        let view = self.view(key).await;
        match outcome {
            Ok(done) => Ok(json(
                StatusCode::OK,
                &ActionResult {
                    instance: key.clone(),
                    message: format!("{what}: {done}"),
                    file: Some(file),
                    view,
                },
            )),
            Err(problem) => Err(CallError::new(
                502,
                format!("{what}, but it did not work out: {problem}"),
            )
            .hint(format!("see `ten logs {key}` and `ten events`"))),
        }
    }

    /// `ten spawn`: declare (write the instance file) and start.
    async fn declare(&self, key: InstanceKey) -> Result<Reply, CallError> {
        let status = self.status().await?;
        let shown = self.instance_file(&status, &key).display().to_string();
        let declared = key.clone();
        let (created, restarted) = self
            .edit(&status, move |editable| {
                let file = editable(&declared);
                let created = edit::create_instance_file(&file.path, &file.check)?;
                let restarted =
                    !created && edit::set_state(&file.path, RunState::Running, &file.check)?;
                Ok((created, restarted))
            })
            .await?;
        let what = match (created, restarted) {
            (true, _) => format!("declared {key} in {shown}"),
            (false, true) => {
                format!("{key} was declared stopped; set state = \"running\" in {shown}")
            }
            (false, false) => format!("{key} is already declared in {shown}"),
        };
        self.converge(&key, Goal::Up, shown, &what).await
    }

    /// `ten weight`: set `weight` in the instance file (in place: no restart).
    async fn set_weight(&self, key: InstanceKey, weight: u8) -> Result<Reply, CallError> {
        if weight > 100 {
            return Err(bad_request(format!(
                "weight must be between 0 and 100, not {weight}"
            )));
        }
        let status = self.status().await?;
        self.must_be_declared(&key).await?;
        let shown = self.instance_file(&status, &key).display().to_string();
        let weighted = key.clone();
        self.edit(&status, move |editable| {
            let file = editable(&weighted);
            edit::set_weight(&file.path, weight, &file.check)
        })
        .await?;
        let reloaded = self.ask(Call::Reload).await?;
        let view = self.view(&key).await;
        let applied = view.as_ref().is_some_and(|view| view.weight == weight);
        let message = match (&reloaded.held, applied) {
            (Some(held), false) => {
                format!("set weight = {weight} in {shown}; not applied yet: {held}")
            }
            _ => format!("weight {weight} (in {shown})"),
        };
        Ok(json(
            StatusCode::OK,
            &ActionResult {
                instance: key,
                message,
                file: Some(shown),
                view,
            },
        ))
    }

    /// `ten deploy S:VERSION`: declare it with no traffic, wait until it is healthy, then give
    /// it its weight. It never takes traffic before it is healthy.
    async fn deploy(&self, request: DeployRequest) -> Result<Reply, CallError> {
        let key = InstanceKey::parse(&format!("{}:{}", request.process, request.version))
            .map_err(|error| bad_request(error.to_string()))?;
        let weight = request.weight.unwrap_or(100);
        if weight > 100 {
            return Err(bad_request(format!(
                "weight must be between 0 and 100, not {weight}"
            )));
        }
        let status = self.status().await?;
        let shown = self.instance_file(&status, &key).display().to_string();
        let declared = key.clone();
        self.edit(&status, move |editable| {
            let file = editable(&declared);
            edit::set_weight(&file.path, 0, &file.check)?;
            edit::set_state(&file.path, RunState::Running, &file.check)
        })
        .await?;
        let reloaded = self.ask(Call::Reload).await?;
        if let Some(held) = reloaded.held {
            return Err(CallError::new(
                409,
                format!("declared {key} with weight 0 in {shown}, but it is not started: {held}"),
            ));
        }
        let watch = self
            .ask(|reply| Call::Watch {
                key: key.clone(),
                reply,
            })
            .await?;
        let timeout = Duration::from_secs(request.timeout.unwrap_or(60));
        if let Err(problem) = settle(watch, Goal::Running { old_pid: None }, timeout).await {
            return Err(CallError::new(
                502,
                format!("{key} did not become healthy, so it takes no traffic (weight 0 in {shown}): {problem}"),
            )
            .hint(format!("see `ten logs {key}`; `ten rm {key}` removes it")));
        }
        let weighted = key.clone();
        self.edit(&status, move |editable| {
            let file = editable(&weighted);
            edit::set_weight(&file.path, weight, &file.check)
        })
        .await?;
        self.ask(Call::Reload).await?;
        let view = self.view(&key).await;
        Ok(json(
            StatusCode::OK,
            &ActionResult {
                instance: key,
                message: format!("deployed: healthy, now taking traffic with weight {weight}"),
                file: Some(shown),
                view,
            },
        ))
    }

    /// `ten route S --from A --to B`: B takes A's weight, A gets 0, in one reload.
    async fn reroute(&self, request: RouteRequest) -> Result<Reply, CallError> {
        let parse = |id: &str| {
            InstanceKey::parse(&format!("{}:{id}", request.process))
                .map_err(|error| bad_request(error.to_string()))
        };
        let (from, to) = (parse(&request.from)?, parse(&request.to)?);
        if from == to {
            return Err(bad_request(format!(
                "--from and --to name the same instance ({from}): there is no traffic to move"
            ))
            .hint(format!("to set its share, use `ten weight {from} N`")));
        }
        let views = self.ask(Call::Instances).await?;
        let find = |key: &InstanceKey| {
            views
                .iter()
                .find(|view| view.instance == *key && view.state.is_some())
                .cloned()
        };
        let from_view =
            find(&from).ok_or_else(|| CallError::new(404, format!("{from} is not declared")))?;
        let to_view =
            find(&to).ok_or_else(|| CallError::new(404, format!("{to} is not declared")))?;
        if !matches!(
            to_view.phase,
            crate::observed::Phase::Running | crate::observed::Phase::Sleeping
        ) {
            return Err(CallError::new(
                409,
                format!(
                    "{to} is {}, not running: the traffic stays on {from}",
                    to_view.phase
                ),
            )
            .hint(format!(
                "start it first (`ten start {to}`), or see `ten logs {to}`"
            )));
        }
        let weight = if from_view.weight == 0 {
            100
        } else {
            from_view.weight
        };
        let status = self.status().await?;
        let (moved_from, moved_to) = (from.clone(), to.clone());
        self.edit(&status, move |editable| {
            let (from_file, to_file) = (editable(&moved_from), editable(&moved_to));
            edit::set_weight(&to_file.path, weight, &to_file.check)?;
            edit::set_weight(&from_file.path, 0, &from_file.check)
        })
        .await?;
        self.ask(Call::Reload).await?;
        let view = self.view(&to).await;
        Ok(json(
            StatusCode::OK,
            &ActionResult {
                instance: to.clone(),
                message: format!(
                    "traffic of {} moved from {from} to {to} (weight {weight})",
                    request.process
                ),
                file: None,
                view,
            },
        ))
    }

    /// `ten stop` / `ten start`: set `state` in the instance file.
    async fn set_state(&self, key: InstanceKey, state: RunState) -> Result<Reply, CallError> {
        let status = self.status().await?;
        self.must_be_declared(&key).await?;
        let shown = self.instance_file(&status, &key).display().to_string();
        let stated = key.clone();
        let changed = self
            .edit(&status, move |editable| {
                let file = editable(&stated);
                edit::set_state(&file.path, state, &file.check)
            })
            .await?;
        let what = if changed {
            format!("set state = \"{state}\" in {shown}")
        } else {
            format!("{shown} already says state = \"{state}\"")
        };
        let goal = match state {
            RunState::Running => Goal::Up,
            RunState::Stopped => Goal::Stopped,
        };
        self.converge(&key, goal, shown, &what).await
    }

    /// `ten rm`: remove the instance file (and the instance's token, if it has one).
    async fn undeclare(self: Arc<Self>, key: InstanceKey) -> Result<Reply, CallError> {
        let status = self.status().await?;
        let path = self.instance_file(&status, &key);
        let shown = path.display().to_string();
        let removed = self
            .edit(&status, move |_| edit::remove_instance_file(&path))
            .await?;
        if !removed {
            let listed = self
                .view(&key)
                .await
                .is_some_and(|view| view.state.is_some());
            return Err(if listed {
                CallError::new(
                    409,
                    format!("{key} is declared in [instances] of tenement.toml, not by a file"),
                )
                .hint("remove it from [instances] in tenement.toml")
            } else {
                CallError::new(404, format!("{key} is not declared"))
            });
        }
        let state = Arc::clone(&self);
        let scope = Scope::Tenant(key.clone());
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || state.auth.revoke(&scope)).await
        {
            tracing::warn!(instance = %key, %error, "cannot revoke the instance's token");
        }
        self.converge(
            &key,
            Goal::Removed,
            shown.clone(),
            &format!("removed {shown}"),
        )
        .await
    }

    async fn restart(&self, key: InstanceKey) -> Result<Reply, CallError> {
        let old_pid = self.view(&key).await.and_then(|view| view.pid);
        let status = self
            .ask(|reply| Call::Restart {
                key: key.clone(),
                reply,
            })
            .await??;
        let outcome = settle(
            Some(status),
            Goal::Running { old_pid },
            Duration::from_secs(60),
        )
        .await;
        let view = self.view(&key).await;
        match outcome {
            Ok(done) => Ok(json(
                StatusCode::OK,
                &ActionResult {
                    instance: key,
                    message: format!("restarted: {done}"),
                    file: None,
                    view,
                },
            )),
            Err(problem) => Err(CallError::new(
                502,
                format!("restart of {key} did not work out: {problem}"),
            )
            .hint(format!("see `ten logs {key}`"))),
        }
    }

    async fn health(&self, key: InstanceKey) -> Result<Reply, CallError> {
        if self
            .view(&key)
            .await
            .is_some_and(|view| view.phase == crate::observed::Phase::Sleeping)
        {
            return Ok(json(
                StatusCode::OK,
                &HealthReport {
                    message: format!("{key} is {}", super::settle::SLEEPING),
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

    /// `ten apply`: executes the plan and streams one line per finished change.
    async fn apply(&self, request: ApplyRequest) -> Result<Reply, CallError> {
        let started = self
            .ask(|reply| Call::Apply {
                token: request.token,
                reply,
            })
            .await??;
        let (sender, response) = body::stream("application/x-ndjson");
        let changes = started.changes.len();
        let _ = sender
            .send(ndjson_line(&ApplyProgress::Started {
                token: started.token,
                changes,
            }))
            .await;
        tokio::spawn(async move {
            let (done_sender, mut done) = mpsc::unbounded_channel();
            for change in started.changes {
                let done_sender = done_sender.clone();
                tokio::spawn(async move {
                    let begun = tokio::time::Instant::now();
                    let goal = Goal::of(
                        change.action,
                        change.status.as_ref().map(|s| s.borrow().clone()).as_ref(),
                    );
                    let outcome = settle(change.status, goal, change.timeout).await;
                    let _ = done_sender.send(ApplyProgress::Done {
                        target: change.target,
                        action: change.action.as_str().to_string(),
                        ok: outcome.is_ok(),
                        message: outcome.unwrap_or_else(|error| error),
                        elapsed_ms: begun.elapsed().as_millis() as u64,
                    });
                });
            }
            drop(done_sender);
            let (mut ok, mut failed) = (0, 0);
            while let Some(progress) = done.recv().await {
                if let ApplyProgress::Done { ok: true, .. } = progress {
                    ok += 1;
                } else {
                    failed += 1;
                }
                let _ = sender.send(ndjson_line(&progress)).await;
            }
            let _ = sender
                .send(ndjson_line(&ApplyProgress::Finished { ok, failed }))
                .await;
        });
        Ok(response)
    }

    fn follow_logs(&self, query: LogQuery) -> Reply {
        let mut lines = self.logs.subscribe();
        let (sender, response) = body::stream("text/event-stream");
        tokio::spawn(async move {
            loop {
                match lines.recv().await {
                    Ok(line) if query.matches(&line) => {
                        if sender.send(sse_event(&line)).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        let note = Bytes::from(format!(
                            ": {missed} lines were skipped (too fast to follow)\n\n"
                        ));
                        if sender.send(note).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        response
    }

    fn follow_events(&self, instance: Option<InstanceKey>) -> Reply {
        let mut events = self.events.subscribe();
        let (sender, response) = body::stream("text/event-stream");
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if instance
                    .as_ref()
                    .is_some_and(|key| event.instance.as_ref() != Some(key))
                {
                    continue;
                }
                if sender.send(sse_event(&event)).await.is_err() {
                    return;
                }
            }
        });
        response
    }
}

fn not_found(method: &Method, path: &str) -> CallError {
    CallError::new(404, format!("no API route {method} /api/{path}"))
        .hint("see `ten --help` for what the CLI can do")
}

/// `notes:alice` (also percent-encoded) as a key.
fn parse_key(text: &str) -> Result<InstanceKey, CallError> {
    decode_key(text).map_err(|error| bad_request(error.to_string()))
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// The instance asked for: `?instance=S:ID` (or `all`), or `?process=S&id=ID` (the
/// original's names) when `names` allows them.
fn instance_filter(query: &HashMap<String, String>, names: bool) -> Result<Filter, CallError> {
    let (process, id) = if names {
        (query.get("process"), query.get("id"))
    } else {
        (None, None)
    };
    Ok(match (query.get("instance"), process, id) {
        (Some(all), _, _) if all == "all" => Filter::All,
        (Some(key), _, _) => Filter::One(parse_key(key)?),
        (None, Some(process), Some(id)) => Filter::One(parse_key(&format!("{process}:{id}"))?),
        (None, Some(_), None) | (None, None, Some(_)) => {
            return Err(bad_request(
                "give both `process` and `id`, or `instance=S:ID`",
            ));
        }
        (None, None, None) => Filter::Unspecified,
    })
}

/// The events asked for, narrowed to what `scope` may see.
fn event_filter(
    query: &HashMap<String, String>,
    scope: &Scope,
) -> Result<Option<InstanceKey>, CallError> {
    scope.narrow(instance_filter(query, false)?)
}

/// `?process=S&id=ID` or `?instance=S:ID`, `level`, `search`, `limit`; narrowed to what
/// `scope` may see.
fn log_query(query: &HashMap<String, String>, scope: &Scope) -> Result<LogQuery, CallError> {
    let instance = scope.narrow(instance_filter(query, true)?)?;
    let stream = match query.get("level") {
        Some(level) => Some(Stream::parse(level).ok_or_else(|| {
            bad_request(format!("level must be stdout or stderr, not {level:?}"))
        })?),
        None => None,
    };
    let limit = match query.get("limit") {
        Some(limit) => Some(
            limit
                .parse()
                .map_err(|_| bad_request(format!("limit must be a number, not {limit:?}")))?,
        ),
        None => None,
    };
    Ok(LogQuery {
        instance,
        stream,
        search: query
            .get("search")
            .filter(|search| !search.is_empty())
            .cloned(),
        limit,
    })
}

/// The answer to a request refused before any route: 401, or 429 with Retry-After. A 429
/// closes the connection, so a flood costs the sender a new connection per attempt.
pub(super) fn refusal(refused: Refused) -> Reply {
    match refused {
        Refused::Unauthorized => body::error(
            StatusCode::UNAUTHORIZED,
            "missing or invalid API token",
            Some("send `Authorization: Bearer TOKEN`; the CLI reads it from --token, TENEMENT_TOKEN or {data_dir}/api_token".into()),
        ),
        Refused::Limited { retry_after } => {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let mut reply = body::error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed API token checks from this address; try again in {seconds} s"),
                Some("a valid token is still accepted; check --token, TENEMENT_TOKEN or {data_dir}/api_token".into()),
            );
            let headers = reply.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            reply
        }
    }
}

/// Reads a JSON body; an empty body reads as `{}`.
async fn read_json<T: DeserializeOwned>(request: Request<Incoming>) -> Result<T, CallError> {
    let limited = http_body_util::Limited::new(request.into_body(), MAX_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|error| bad_request(format!("cannot read the request body: {error}")))?
        .to_bytes();
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|error| bad_request(format!("invalid JSON body: {error}")))
}
