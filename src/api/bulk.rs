//! The API's bulk commands: `ten stop|start|restart` of a service, a group or every
//! instance (`POST /api/instances/stop|start|restart`), `ten ps` of one
//! (`GET /api/instances?select=`), and the `service` or `group` of `ten logs` and `ten events`. Stops and starts edit each instance file (comments kept),
//! reload once and wait for every instance; the core stops them in `stop_order`. Restarts
//! restart each instance at once.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use hyper::{Response, StatusCode};
use tokio::task::JoinSet;

use crate::body::{Body, json};
use crate::config::RunState;
use crate::config::edit;
use crate::desired::select::{Selection, resolve, select, undeclared};
use crate::desired::{DesiredState, Selector};
use crate::names::{GroupName, InstanceKey, ServiceName};
use crate::observed::Phase;
use crate::reconcile::Call;
use crate::runtime::logs::LogQuery;
use crate::supervisor::messages::StatusReceiver;

use super::error::{CallError, bad_request, select_error};
use super::scope::Scope;
use super::settle::{Goal, settle};
use super::state::ApiState;
use super::streams::log_query;
use super::types::{BulkOutcome, BulkRequest, BulkResult, InstanceView};
use super::views;

type Reply = Response<Body>;

/// A log or event query with its `service` or `group` resolved (see `ApiState::selected`).
pub(super) struct Selected<'q> {
    /// The query; its `instance` set when `group:NAME` names an instance of a service named
    /// `group`.
    pub query: Cow<'q, HashMap<String, String>>,
    /// Only the instances of these services (`None`: not narrowed to services).
    pub services: Option<BTreeSet<ServiceName>>,
}

/// How long a bulk start or restart may take, and each order of a bulk stop besides its
/// longest stop_timeout.
const WAIT: Duration = Duration::from_secs(60);

/// One instance's wait: its status, what it waits for, and what was done before it.
struct Pending {
    key: InstanceKey,
    status: Option<StatusReceiver>,
    goal: Goal,
    what: String,
    file: Option<String>,
}

impl ApiState {
    /// The desired state now and the declared instances `selector` means in it.
    async fn selection(
        &self,
        selector: &Selector,
    ) -> Result<(crate::reconcile::Snapshot, Vec<InstanceKey>), CallError> {
        let snapshot = self.ask(Call::Instances).await?;
        let keys = select(&snapshot.desired, selector).map_err(select_error)?;
        Ok((snapshot, keys))
    }

    /// `GET /api/instances?select=TEXT`: the instances of a service, a group or one instance,
    /// undeclared ones still being destroyed included; without `select`, all of them.
    pub(super) async fn selected_views(
        &self,
        select: Option<&String>,
    ) -> Result<Vec<InstanceView>, CallError> {
        let snapshot = self.ask(Call::Instances).await?;
        let views = views::snapshot_views(&snapshot);
        let Some(text) = select else {
            return Ok(views);
        };
        let selector = Selector::parse(text).map_err(|error| bad_request(error.to_string()))?;
        let selection = resolve(&snapshot.desired.config, &selector).map_err(select_error)?;
        let views: Vec<InstanceView> = views
            .into_iter()
            .filter(|view| selection.contains(&view.instance))
            .collect();
        // One instance asked for: declared, or still in the process table (a held destroy);
        // else a typo would read as "nothing there".
        if let (Selector::Instance(key), true) = (&selector, views.is_empty()) {
            return Err(select_error(undeclared(&snapshot.desired, key)));
        }
        Ok(views)
    }

    /// The log query of a request: `log_query`, narrowed to the services of `?service=NAME`
    /// or `?group=NAME` when asked (see `selected`). One instance must be declared, or still
    /// have its output (see `must_have_logs`): else nothing would ever come, and
    /// `ten logs -f` would wait forever.
    pub(super) async fn log_query_of(
        &self,
        query: &HashMap<String, String>,
        scope: &Scope,
    ) -> Result<LogQuery, CallError> {
        let selected = self.selected(query).await?;
        let log_query = log_query(&selected.query, scope, selected.services)?;
        if let Some(key) = &log_query.instance {
            self.must_have_logs(key).await?;
        }
        Ok(log_query)
    }

    /// `?service=NAME` or `?group=NAME` of a log or event query, resolved as `ten ps` and
    /// `ten stop` resolve a selector: declared ones only (an unknown name is an error with a
    /// "did you mean").
    pub(super) async fn selected<'q>(
        &self,
        query: &'q HashMap<String, String>,
    ) -> Result<Selected<'q>, CallError> {
        let unchanged = |services| Selected {
            query: Cow::Borrowed(query),
            services,
        };
        let selector = match (query.get("service"), query.get("group")) {
            (None, None) => return Ok(unchanged(None)),
            (Some(_), Some(_)) => return Err(bad_request("give `service` or `group`, not both")),
            (Some(name), None) => Selector::Service(ServiceName::new(name).map_err(|error| {
                bad_request(format!("invalid service name {name:?}: it {error}"))
            })?),
            (None, Some(name)) => Selector::Group(GroupName::new(name).map_err(|error| {
                bad_request(format!("invalid group name {name:?}: it {error}"))
            })?),
        };
        let snapshot = self.ask(Call::Instances).await?;
        Ok(
            match resolve(&snapshot.desired.config, &selector).map_err(select_error)? {
                Selection::Services(services) => unchanged(Some(services)),
                // `group:NAME` as an instance of a service named `group` (no group declared).
                Selection::Instance(key) => {
                    let mut query = query.clone();
                    query.insert("instance".into(), key.to_string());
                    Selected {
                        query: Cow::Owned(query),
                        services: None,
                    }
                }
                Selection::All => unchanged(None),
            },
        )
    }

    /// `ten stop|start SELECTOR`: `state` in every selected instance's file, one reload, then
    /// waits for each (a stop in `stop_order`).
    pub(super) async fn bulk_state(
        &self,
        request: BulkRequest,
        state: RunState,
    ) -> Result<Reply, CallError> {
        if request.force {
            return Err(bad_request("`force` is for restarts only"));
        }
        let (snapshot, keys) = self.selection(&request.select).await?;
        let timeout = match state {
            RunState::Running => WAIT,
            RunState::Stopped => stop_wait(&snapshot.desired, &keys),
        };
        let status = self.status().await?;
        let shown: Vec<String> = keys
            .iter()
            .map(|key| self.instance_file(&status, key).display().to_string())
            .collect();
        let edited = keys.clone();
        let edits = self
            .edit(&status, move |editable| {
                Ok(edited
                    .iter()
                    .map(|key| {
                        let file = editable(key);
                        edit::set_state(&file.path, state, &file.check)
                            .map_err(|error| error.to_string())
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        let mut outcomes = Vec::new();
        let mut pending = Vec::new();
        for ((key, file), edited) in keys.into_iter().zip(shown).zip(edits) {
            let what = match edited {
                Ok(true) => format!("set state = \"{state}\" in {file}"),
                Ok(false) => format!("{file} already says state = \"{state}\""),
                Err(error) => {
                    outcomes.push(outcome(key, false, error, None));
                    continue;
                }
            };
            pending.push(Pending {
                key,
                status: None,
                goal: match state {
                    RunState::Running => Goal::Up,
                    RunState::Stopped => Goal::Stopped,
                },
                what,
                file: Some(file),
            });
        }
        let reloaded = self.reload().await?;
        if !reloaded.valid && reloaded.diagnostics.iter().any(|d| d.is_error()) {
            return Err(CallError {
                status: 409,
                message: format!(
                    "set state = \"{state}\" in {} files, but the files have errors, so nothing changed yet",
                    pending.len()
                ),
                hint: Some("fix them (`ten validate` shows where); the change applies as soon as they are valid".into()),
                diagnostics: reloaded.diagnostics,
            });
        }
        if let Some(held) = &reloaded.held {
            for wait in pending {
                let message = format!("{}; not applied yet: {held}", wait.what);
                outcomes.push(BulkOutcome {
                    file: wait.file,
                    ..outcome(wait.key, true, message, None)
                });
            }
            return self
                .answer(request.select, verb(state), outcomes, reloaded.held)
                .await;
        }
        for wait in &mut pending {
            wait.status = self
                .ask(|reply| Call::Watch {
                    key: wait.key.clone(),
                    reply,
                })
                .await?;
        }
        outcomes.extend(wait_all(pending, timeout).await);
        self.answer(request.select, verb(state), outcomes, None)
            .await
    }

    /// `ten restart SELECTOR [--force]`: every selected instance that runs (or failed) is
    /// restarted at once; those declared stopped and those asleep are left as they are.
    pub(super) async fn bulk_restart(&self, request: BulkRequest) -> Result<Reply, CallError> {
        let (snapshot, keys) = self.selection(&request.select).await?;
        let mut outcomes = Vec::new();
        let mut pending = Vec::new();
        for key in keys {
            let declared_stopped = snapshot
                .desired
                .instances
                .get(&key)
                .is_some_and(|spec| spec.state == RunState::Stopped);
            let observed = snapshot.observed.instances.get(&key);
            let skipped = match observed.map(|instance| instance.phase) {
                _ if declared_stopped => Some(format!(
                    "declared stopped; not restarted (`ten start {key}` starts it)"
                )),
                Some(Phase::Sleeping) => {
                    Some(format!("{}; not restarted", super::settle::SLEEPING))
                }
                _ => None,
            };
            if let Some(message) = skipped {
                outcomes.push(BulkOutcome {
                    skipped: true,
                    ..outcome(key, true, message, None)
                });
                continue;
            }
            let old_pid = observed.and_then(|instance| instance.pid);
            let restarted = self
                .ask(|reply| Call::Restart {
                    key: key.clone(),
                    force: request.force,
                    reply,
                })
                .await?;
            match restarted {
                Ok(status) => pending.push(Pending {
                    key,
                    status: Some(status),
                    goal: Goal::Running { old_pid },
                    what: if request.force {
                        "restarted with SIGKILL".into()
                    } else {
                        "restarted".into()
                    },
                    file: None,
                }),
                Err(failure) => {
                    outcomes.push(outcome(key, false, CallError::from(failure).message, None))
                }
            }
        }
        outcomes.extend(wait_all(pending, WAIT).await);
        self.answer(request.select, "restart", outcomes, None).await
    }

    /// The answer: each outcome with the instance's view now, in key order.
    async fn answer(
        &self,
        select: Selector,
        action: &str,
        mut outcomes: Vec<BulkOutcome>,
        held: Option<String>,
    ) -> Result<Reply, CallError> {
        // The outcomes come from the tasks, the views from the observed state, which hears
        // of the tasks a moment later (their statuses are passed on at most every 100 ms):
        // the views are asked again, a little while, until they say what the outcomes said.
        let settled = match action {
            "start" | "restart" => Some(Phase::Running),
            "stop" => Some(Phase::Stopped),
            _ => None,
        };
        let mut views = self.views().await?;
        for _ in 0..40 {
            let behind = settled.is_some_and(|phase| {
                outcomes.iter().filter(|outcome| outcome.ok).any(|outcome| {
                    views
                        .iter()
                        .any(|view| view.instance == outcome.instance && view.phase != phase)
                })
            });
            if !behind {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            views = self.views().await?;
        }
        for outcome in &mut outcomes {
            outcome.view = views
                .iter()
                .find(|view| view.instance == outcome.instance)
                .cloned();
        }
        outcomes.sort_by(|a, b| a.instance.cmp(&b.instance));
        let failed = outcomes.iter().filter(|outcome| !outcome.ok).count();
        let result = BulkResult {
            select,
            action: action.to_string(),
            ok: outcomes.len() - failed,
            failed,
            instances: outcomes,
            held,
        };
        let status = if result.held.is_some() {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        Ok(json(status, &result))
    }
}

fn verb(state: RunState) -> &'static str {
    match state {
        RunState::Running => "start",
        RunState::Stopped => "stop",
    }
}

fn outcome(instance: InstanceKey, ok: bool, message: String, file: Option<String>) -> BulkOutcome {
    BulkOutcome {
        instance,
        ok,
        skipped: false,
        message,
        file,
        view: None,
    }
}

/// Waits for every instance at once.
async fn wait_all(pending: Vec<Pending>, timeout: Duration) -> Vec<BulkOutcome> {
    let mut waits = JoinSet::new();
    for wait in pending {
        waits.spawn(async move {
            let result = settle(wait.status, wait.goal, timeout).await;
            let (ok, message) = match result {
                Ok(done) => (true, format!("{}: {done}", wait.what)),
                Err(problem) => (
                    false,
                    format!("{}, but it did not work out: {problem}", wait.what),
                ),
            };
            outcome(wait.key, ok, message, wait.file)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = waits.join_next().await {
        if let Ok(outcome) = joined {
            outcomes.push(outcome);
        }
    }
    outcomes
}

/// How long a bulk stop of `keys` may take: each of their stop orders in turn, each as long
/// as its longest stop_timeout and the grace, and [`WAIT`] besides.
fn stop_wait(desired: &DesiredState, keys: &[InstanceKey]) -> Duration {
    let mut longest: std::collections::BTreeMap<i32, Duration> = Default::default();
    for spec in keys.iter().filter_map(|key| desired.instances.get(key)) {
        let entry = longest.entry(spec.stop_order).or_default();
        *entry = (*entry).max(spec.stop_timeout);
    }
    longest
        .values()
        .map(|timeout| *timeout + crate::reconcile::core::GRACE)
        .sum::<Duration>()
        + WAIT
}
