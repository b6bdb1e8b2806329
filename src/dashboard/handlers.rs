//! The dashboard's pages (GET): each reads what it shows from the reconciler's snapshot or
//! through the API (`call`), narrowed to the session's scope, and renders it.

use std::collections::{BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};

use crate::api::route::Route;
use crate::api::scope::{Scope, authorize, decode_key};
use crate::api::types::{Event, InstanceView, LogLine, PlanView, StatusView};
use crate::body::{self, Body};
use crate::config::Listen;
use crate::names::{GroupName, InstanceKey};
use crate::reconcile::{Call, Snapshot};
use crate::render::config_view::{instance_value, to_toml};

use super::call::{call, query, raw, segment};
use super::instance::{Allowed, InstanceData, LogSearch, instance_page};
use super::instances::{Choices, instances_page};
use super::pages::{Overview, login, overview as overview_page, problem_page};
use super::router::Page;
use super::table::{TableQuery, table_page};
use super::{Current, Dashboard, html};

type Reply = Response<Body>;

/// Log lines shown unless asked.
const LOG_LINES: usize = 200;

/// The stylesheet and the script, embedded in the binary.
pub(super) fn asset(name: &str) -> Reply {
    let (content_type, text) = match name {
        "dash.css" => ("text/css; charset=utf-8", include_str!("assets/dash.css")),
        _ => (
            "text/javascript; charset=utf-8",
            include_str!("assets/dash.js"),
        ),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "max-age=300")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(body::full(text))
        .expect("static response parts")
}

/// Without a session: the login form at `/`, 401 for every other page and action.
pub(super) fn without_session(page: &Page) -> Reply {
    match page {
        Page::Overview => html(StatusCode::OK, login(None)),
        Page::Instances | Page::Instance(_) => html(
            StatusCode::UNAUTHORIZED,
            login(Some("Sign in to see this page.")),
        ),
        _ => body::text(
            StatusCode::UNAUTHORIZED,
            "no dashboard session: sign in at / with an API token first",
        ),
    }
}

fn params(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn snapshot(dashboard: &Dashboard) -> Result<Snapshot, String> {
    dashboard
        .api
        .ask(Call::Instances)
        .await
        .map_err(|error| error.message)
}

/// Every instance the scope sees, as `ten ps` shows them.
fn visible(snapshot: &Snapshot, scope: &Scope) -> Vec<InstanceView> {
    crate::api::views::snapshot_views(snapshot)
        .into_iter()
        .filter(|view| scope.sees(&view.instance))
        .collect()
}

fn unavailable(current: &Current, error: &str) -> Reply {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        problem_page(&current.session, "Unavailable", error),
    )
}

/// `/`: the overview for an admin; a tenant's own instance page.
pub(super) async fn overview(dashboard: &Dashboard, current: &Current) -> Reply {
    let scope = &current.session.scope;
    if let Scope::Tenant(own) = scope {
        return instance_of(dashboard, current, own.clone(), &HashMap::new()).await;
    }
    let api = &dashboard.api;
    let (status, plan, events, snapshot) = tokio::join!(
        call(api, scope, Method::GET, "status", None),
        call(api, scope, Method::GET, "plan", None),
        call(api, scope, Method::GET, "events?limit=25", None),
        snapshot(dashboard),
    );
    let snapshot = match snapshot {
        Ok(snapshot) => snapshot,
        Err(error) => return unavailable(current, &error),
    };
    let data = Overview {
        status: status.json::<StatusView>(),
        plan: plan.json::<PlanView>(),
        instances: visible(&snapshot, scope),
        events: events.json::<Vec<Event>>(),
    };
    html(StatusCode::OK, overview_page(&current.session, &data))
}

/// `/instances`: the table, filtered, sorted and paged here.
pub(super) async fn instances(
    dashboard: &Dashboard,
    current: &Current,
    query: Option<&str>,
) -> Reply {
    let snapshot = match snapshot(dashboard).await {
        Ok(snapshot) => snapshot,
        Err(error) => return unavailable(current, &error),
    };
    let table = TableQuery::parse(&params(query));
    let config = &snapshot.desired.config;
    let group_services: Option<BTreeSet<String>> = table.group.as_ref().map(|group| {
        GroupName::new(group)
            .ok()
            .and_then(|name| config.groups.get(&name))
            .map(|services| services.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    });
    let scope = &current.session.scope;
    let choices = if scope.is_admin() {
        Choices {
            services: config.services.keys().map(ToString::to_string).collect(),
            groups: config.groups.keys().map(ToString::to_string).collect(),
        }
    } else {
        Choices {
            services: Vec::new(),
            groups: Vec::new(),
        }
    };
    let views = visible(&snapshot, scope);
    let page = table_page(views, &table, group_services.as_ref());
    html(
        StatusCode::OK,
        instances_page(&current.session, &table, &page, &choices),
    )
}

/// `/instances/{S:ID}`.
pub(super) async fn instance(
    dashboard: &Dashboard,
    current: &Current,
    key_text: &str,
    query: Option<&str>,
) -> Reply {
    match decode_key(key_text) {
        Ok(key) => instance_of(dashboard, current, key, &params(query)).await,
        Err(error) => html(
            StatusCode::BAD_REQUEST,
            problem_page(&current.session, "No such instance", &error.to_string()),
        ),
    }
}

/// Whether `scope` may `method /api/PATH`, as the API decides it.
fn may(scope: &Scope, method: Method, segments: &[&str]) -> bool {
    Route::parse(&method, segments)
        .is_some_and(|route| authorize(scope, &route.need(), &method, "").is_ok())
}

async fn instance_of(
    dashboard: &Dashboard,
    current: &Current,
    key: InstanceKey,
    params: &HashMap<String, String>,
) -> Reply {
    let scope = &current.session.scope;
    if !scope.sees(&key) {
        return html(
            StatusCode::FORBIDDEN,
            problem_page(
                &current.session,
                "Not yours",
                &format!("this session ({scope}) may not see {key}"),
            ),
        );
    }
    let search = log_search(params);
    let text = key.to_string();
    let logs_query = query(&[
        ("instance", Some(&text)),
        ("search", search.search.as_deref()),
        ("since", search.since.as_deref()),
        ("until", search.until.as_deref()),
        ("limit", Some(&search.limit.to_string())),
    ]);
    let events_path = format!(
        "events?{}",
        query(&[("instance", Some(&text)), ("limit", Some("50"))])
    );
    let logs_path = format!("logs?{logs_query}");
    let api = &dashboard.api;
    let (snapshot, events, logs) = tokio::join!(
        snapshot(dashboard),
        call(api, scope, Method::GET, &events_path, None),
        call(api, scope, Method::GET, &logs_path, None),
    );
    let snapshot = match snapshot {
        Ok(snapshot) => snapshot,
        Err(error) => return unavailable(current, &error),
    };
    let Some(view) = visible(&snapshot, scope)
        .into_iter()
        .find(|view| view.instance == key)
    else {
        return html(
            StatusCode::NOT_FOUND,
            problem_page(
                &current.session,
                "No such instance",
                &format!("{key} is not declared (declare it with `ten spawn {key}`)"),
            ),
        );
    };
    let spec = snapshot.desired.instances.get(&key).map(|spec| {
        to_toml(
            &instance_value(spec, false),
            &format!("effective spec of {key} (secrets masked)"),
        )
    });
    let encoded = segment(&text);
    // A worker takes no HTTP traffic: the API refuses its weight, so none is offered.
    let worker = snapshot
        .desired
        .config
        .services
        .get(&key.service)
        .is_some_and(|service| service.listen == Listen::None);
    let allowed = Allowed {
        restart: may(scope, Method::POST, &["instances", &encoded, "restart"]),
        stop_start: may(scope, Method::POST, &["instances", &encoded, "stop"])
            && may(scope, Method::POST, &["instances", &encoded, "start"]),
        weight: !worker && may(scope, Method::PUT, &["instances", &encoded, "weight"]),
    };
    let logs = logs
        .json::<Vec<LogLine>>()
        .map(|lines| within_window(lines, &search, SystemTime::now()));
    let data = InstanceData {
        view,
        spec,
        events: events.json::<Vec<Event>>(),
        logs,
        search,
        allowed,
    };
    html(StatusCode::OK, instance_page(&current.session, &data))
}

fn log_search(params: &HashMap<String, String>) -> LogSearch {
    let text = |name: &str| {
        params
            .get(name)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    };
    LogSearch {
        search: text("search"),
        since: text("since"),
        until: text("until"),
        limit: params
            .get("limit")
            .and_then(|limit| limit.parse().ok())
            .unwrap_or(LOG_LINES)
            .clamp(1, 10_000),
        follow: params.get("follow").is_some_and(|value| value == "1"),
    }
}

/// A time of the log search in milliseconds since the epoch: a duration before `now`
/// (`2h`) or a timestamp (`2026-12-01T10:00:00Z`, `2026-12-01 10:00:00`).
fn instant_of(text: &str, now: SystemTime) -> Option<u64> {
    let at = match humantime::parse_duration(text) {
        Ok(ago) => now.checked_sub(ago)?,
        Err(_) => humantime::parse_rfc3339_weak(text).ok()?,
    };
    at.duration_since(UNIX_EPOCH)
        .ok()
        .map(|since| since.as_millis() as u64)
}

/// The lines within the search's `since` and `until`, as the page reads them: the logs API
/// is asked for the same window, and an API that does not narrow by time yet is narrowed
/// here (a bound the page cannot read is left to the API).
fn within_window(lines: Vec<LogLine>, search: &LogSearch, now: SystemTime) -> Vec<LogLine> {
    let since = search
        .since
        .as_deref()
        .and_then(|text| instant_of(text, now));
    let until = search
        .until
        .as_deref()
        .and_then(|text| instant_of(text, now));
    lines
        .into_iter()
        .filter(|line| since.is_none_or(|since| line.at_unix_ms >= since))
        .filter(|line| until.is_none_or(|until| line.at_unix_ms <= until))
        .collect()
}

/// `/live/events[?instance=S:ID]`: the API's event stream for the session's scope.
pub(super) async fn live_events(
    dashboard: &Dashboard,
    current: &Current,
    query: Option<&str>,
) -> Reply {
    let path = match params(query).get("instance") {
        Some(instance) => format!(
            "events/stream?{}",
            super::call::query(&[("instance", Some(instance))])
        ),
        None => "events/stream".to_string(),
    };
    stream(dashboard, current, &path).await
}

/// `/live/logs?instance=S:ID`: the API's log stream for the session's scope.
pub(super) async fn live_logs(
    dashboard: &Dashboard,
    current: &Current,
    query: Option<&str>,
) -> Reply {
    let instance = params(query).get("instance").cloned();
    let path = format!(
        "logs/stream?{}",
        super::call::query(&[("instance", instance.as_deref())])
    );
    stream(dashboard, current, &path).await
}

/// The API's stream at `path`, for the session's scope, passed on as it comes and not cached.
async fn stream(dashboard: &Dashboard, current: &Current, path: &str) -> Reply {
    let mut reply = raw(
        &dashboard.api,
        &current.session.scope,
        Method::GET,
        path,
        None,
    )
    .await;
    reply
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::logs::Stream;
    use std::time::Duration;

    fn line(at_unix_ms: u64) -> LogLine {
        LogLine {
            at_unix_ms,
            instance: InstanceKey::parse("notes:alice").unwrap(),
            stream: Stream::Stdout,
            text: format!("at {at_unix_ms}"),
        }
    }

    #[test]
    fn the_log_window_is_applied_when_the_page_can_read_it() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let lines = || vec![line(1_000_000), line(9_000_000), line(9_999_000)];
        let search = |since: Option<&str>, until: Option<&str>| LogSearch {
            since: since.map(str::to_string),
            until: until.map(str::to_string),
            limit: 10,
            ..LogSearch::default()
        };
        let kept = |search: LogSearch| -> Vec<u64> {
            within_window(lines(), &search, now)
                .iter()
                .map(|line| line.at_unix_ms)
                .collect()
        };
        assert_eq!(kept(search(Some("1h"), None)), [9_000_000, 9_999_000]);
        assert_eq!(kept(search(None, Some("10s"))), [1_000_000, 9_000_000]);
        assert_eq!(
            kept(search(Some("1970-01-01T02:00:00Z"), None)),
            [9_000_000, 9_999_000]
        );
        assert_eq!(
            kept(search(Some("whenever"), None)).len(),
            3,
            "left to the API"
        );
    }
}
