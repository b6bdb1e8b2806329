//! The API's commands that change what is declared (`spawn`, `stop`, `start`, `rm`,
//! `weight`, `deploy`, `route`): they edit instance files (nothing invalid is written, see
//! `config::edit`), reload, and wait until the server converged. The files stay the single
//! source of truth.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Response, StatusCode};

use crate::body::{Body, json};
use crate::config::edit::{self, instance_file_path};
use crate::config::{Listen, RunState};
use crate::desired::select::{SelectError, undeclared};
use crate::names::{InstanceKey, ServiceName};
use crate::reconcile::Call;

use super::error::{CallError, bad_request, select_error};
use super::scope::Scope;
use super::settle::{Goal, settle};
use super::state::ApiState;
use super::types::{ActionResult, DeployRequest, RouteRequest, StatusView};

type Reply = Response<Body>;

/// An instance file to edit: where it is, and what its new text must pass.
pub(super) struct Editable {
    pub path: PathBuf,
    pub check: Box<edit::CheckFn>,
}

impl ApiState {
    /// Edits instance files off the async runtime. `change` gets, for an instance, its
    /// file's path and the check its new text must pass (nothing invalid is written).
    pub(super) async fn edit<T: Send + 'static>(
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

    /// Why `key` cannot be removed: it is not declared (a typo of one that is, or of its
    /// service, is named).
    async fn nothing_to_remove(&self, key: &InstanceKey) -> Result<CallError, CallError> {
        let snapshot = self.ask(Call::Instances).await?;
        Ok(match undeclared(&snapshot.desired, key) {
            SelectError::NotDeclared { close, .. } => {
                let error = CallError::new(
                    404,
                    format!("{key} is not declared: there is nothing to remove"),
                );
                match close {
                    Some(close) => error.hint(format!("did you mean `{close}`?")),
                    None => error.hint(format!("`ten ps {}` lists its instances", key.service)),
                }
            }
            error => select_error(error),
        })
    }

    /// Refuses a traffic command (`weight`, `deploy`, `route`) for a worker's instances
    /// (`listen = "none"`): they take no HTTP traffic, so there is no weight to set or move.
    /// Said before any file is written: else the check of the edit refuses the `weight` it
    /// would write, as if the user had written it. `does`: what the command does; `instead`:
    /// what to do instead. An undeclared service passes (the command says so itself).
    async fn must_take_traffic(
        &self,
        service: &ServiceName,
        does: &str,
        instead: String,
    ) -> Result<(), CallError> {
        let snapshot = self.ask(Call::Instances).await?;
        let worker = snapshot
            .desired
            .config
            .services
            .get(service)
            .is_some_and(|declared| declared.listen == Listen::None);
        if worker {
            return Err(no_traffic(service, does).hint(instead));
        }
        Ok(())
    }

    /// Reloads the files now and waits until `key` reaches `goal`.
    async fn converge(
        &self,
        key: &InstanceKey,
        goal: Goal,
        file: String,
        what: &str,
    ) -> Result<Reply, CallError> {
        let status = self.reload().await?;
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
    pub(super) async fn declare(&self, key: InstanceKey) -> Result<Reply, CallError> {
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
            // Shown after the instance's name: `web:a: declared in instances/web/a.toml`.
            (true, _) => format!("declared in {shown}"),
            (false, true) => {
                format!("was declared stopped; set state = \"running\" in {shown}")
            }
            (false, false) => format!("already declared in {shown}"),
        };
        let reply = self.converge(&key, Goal::Up, shown.clone(), &what).await?;
        let asleep = self
            .view(&key)
            .await
            .is_some_and(|view| view.phase == crate::observed::Phase::Sleeping);
        if (created || restarted) && asleep {
            // Declared on demand: `spawn` starts it now, as the original does; it sleeps
            // again when idle.
            return self.start_now(key, shown, &what).await;
        }
        Ok(reply)
    }

    /// Starts a sleeping instance now and waits until it answers.
    async fn start_now(
        &self,
        key: InstanceKey,
        file: String,
        what: &str,
    ) -> Result<Reply, CallError> {
        let outcome = self
            .restart_and_wait(&key, false, None, Duration::from_secs(60))
            .await?;
        let view = self.view(&key).await;
        match outcome {
            Ok(done) => Ok(json(
                StatusCode::OK,
                &ActionResult {
                    instance: key,
                    message: format!(
                        "{what}: {done}; it sleeps when idle and wakes on its next request"
                    ),
                    file: Some(file),
                    view,
                },
            )),
            Err(problem) => Err(CallError::new(
                502,
                format!("{what}, but its start did not work out: {problem}"),
            )
            .hint(format!("see `ten logs {key}` and `ten events`"))),
        }
    }

    /// `ten weight`: set `weight` in the instance file (in place: no restart).
    pub(super) async fn set_weight(
        &self,
        key: InstanceKey,
        weight: u8,
    ) -> Result<Reply, CallError> {
        if weight > 100 {
            return Err(bad_request(format!(
                "weight must be between 0 and 100, not {weight}"
            )));
        }
        let status = self.status().await?;
        self.must_be_declared(&key).await?;
        self.must_take_traffic(
            &key.service,
            "a weight is a share of its service's HTTP traffic",
            format!(
                "a worker runs or is stopped: `ten stop {key}` stops it, `ten start {key}` starts it again"
            ),
        )
        .await?;
        let shown = self.instance_file(&status, &key).display().to_string();
        let weighted = key.clone();
        self.edit(&status, move |editable| {
            let file = editable(&weighted);
            edit::set_weight(&file.path, weight, &file.check)
        })
        .await?;
        let reloaded = self.reload().await?;
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

    /// `ten deploy S:VERSION`: declare it with no traffic, start it (on demand too, as
    /// `spawn` does), wait until it is healthy, then give it its weight. It never takes
    /// traffic before it is healthy.
    pub(super) async fn deploy(&self, request: DeployRequest) -> Result<Reply, CallError> {
        let key = InstanceKey::parse(&format!("{}:{}", request.process, request.version))
            .map_err(|error| bad_request(error.to_string()))?;
        let weight = request.weight.unwrap_or(100);
        if weight > 100 {
            return Err(bad_request(format!(
                "weight must be between 0 and 100, not {weight}"
            )));
        }
        let service = &key.service;
        self.must_take_traffic(
            service,
            "a deploy moves HTTP traffic to a new version once it is healthy",
            format!(
                "to run new code in {service}'s instances, `ten restart {service}` (an edit of \
                 [service.{service}] restarts them by itself); to run one more, `ten spawn {key}`"
            ),
        )
        .await?;
        let status = self.status().await?;
        let shown = self.instance_file(&status, &key).display().to_string();
        let declared = key.clone();
        self.edit(&status, move |editable| {
            let file = editable(&declared);
            edit::set_weight(&file.path, 0, &file.check)?;
            edit::set_state(&file.path, RunState::Running, &file.check)
        })
        .await?;
        let reloaded = self.reload().await?;
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
        let started = tokio::time::Instant::now();
        let mut outcome = settle(watch, Goal::Up, timeout).await;
        if outcome.is_ok()
            && self
                .view(&key)
                .await
                .is_some_and(|view| view.phase == crate::observed::Phase::Sleeping)
        {
            // Declared on demand: started now, as `spawn` does, so that it is seen healthy
            // before it takes traffic; it sleeps again when idle.
            let left = timeout.saturating_sub(started.elapsed());
            outcome = self.restart_and_wait(&key, false, None, left).await?;
        }
        if let Err(problem) = outcome {
            return Err(CallError::new(
                502,
                format!("{key} did not become healthy, so it takes no traffic (weight 0 in {shown}): {problem}"),
            )
            .hint(format!(
                "see `ten events {key}` and `ten logs {key}`; `ten rm {key}` removes it"
            )));
        }
        let weighted = key.clone();
        self.edit(&status, move |editable| {
            let file = editable(&weighted);
            edit::set_weight(&file.path, weight, &file.check)
        })
        .await?;
        self.reload().await?;
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

    /// `ten route S --from A --to B`: B takes A's share on top of its own (their weights
    /// added, at most 100), A gets 0, in one reload.
    pub(super) async fn reroute(&self, request: RouteRequest) -> Result<Reply, CallError> {
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
        self.must_take_traffic(
            &from.service,
            "a route moves HTTP traffic from one instance to another",
            format!(
                "to run {to} instead of {from}: `ten start {to}` (`ten spawn {to}` if it is not \
                 declared), then `ten stop {from}`"
            ),
        )
        .await?;
        // A worker is refused first, declared or not: its hint says how to declare `to`.
        self.must_be_declared(&from).await?;
        self.must_be_declared(&to).await?;
        let views = self.views().await?;
        let find = |key: &InstanceKey| {
            views
                .iter()
                .find(|view| view.instance == *key && view.state.is_some())
                .cloned()
        };
        // Declared just above; gone since only if its file was removed meanwhile.
        let from_view = find(&from).ok_or_else(|| CallError::not_declared(&from))?;
        let to_view = find(&to).ok_or_else(|| CallError::not_declared(&to))?;
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
        // With A's share added, B answers what both did; with neither having any, B gets
        // the whole service.
        let weight = match from_view.weight.saturating_add(to_view.weight) {
            0 => 100,
            sum => sum.min(100),
        };
        let status = self.status().await?;
        let (moved_from, moved_to) = (from.clone(), to.clone());
        self.edit(&status, move |editable| {
            let (from_file, to_file) = (editable(&moved_from), editable(&moved_to));
            edit::set_weight(&to_file.path, weight, &to_file.check)?;
            edit::set_weight(&from_file.path, 0, &from_file.check)
        })
        .await?;
        self.reload().await?;
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
    pub(super) async fn set_state(
        &self,
        key: InstanceKey,
        state: RunState,
    ) -> Result<Reply, CallError> {
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
    pub(super) async fn undeclare(self: Arc<Self>, key: InstanceKey) -> Result<Reply, CallError> {
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
                self.nothing_to_remove(&key).await?
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
}

/// A traffic command refused for a worker: what the command `does`, and why there is nothing
/// to do it to.
fn no_traffic(service: &ServiceName, does: &str) -> CallError {
    CallError::new(
        409,
        format!(
            "{does}, and {service} is a worker (listen = \"none\" in [service.{service}]): it \
             takes no HTTP traffic"
        ),
    )
}
