//! The instance page: what one instance is doing, its effective spec (secrets masked the way
//! plans mask them), its events, its logs (searched through the logs API, followed with
//! JavaScript) and the actions the session's scope allows. Pure markup.

use maud::{Markup, html};

use crate::api::types::{Event, InstanceView, LogLine};

use super::pages::{
    Frame, Nav, bytes, clock, cpu, events_table, health_badge, instance_href, layout, phase_badge,
    span,
};
use super::session::Session;

/// The log search of the page (`?search=&since=&until=&limit=`), passed to the logs API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogSearch {
    pub search: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: usize,
    pub follow: bool,
}

/// Which actions the session's scope may take on the instance (as the API decides); no
/// weight for a worker, which takes no HTTP traffic.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Allowed {
    pub restart: bool,
    pub stop_start: bool,
    pub weight: bool,
}

pub(crate) struct InstanceData {
    pub view: InstanceView,
    /// The effective spec as TOML, secrets masked; `None` for an undeclared instance.
    pub spec: Option<String>,
    pub events: Result<Vec<Event>, String>,
    pub logs: Result<Vec<LogLine>, String>,
    pub search: LogSearch,
    pub allowed: Allowed,
}

pub(crate) fn instance_page(session: &Session, data: &InstanceData) -> Markup {
    let view = &data.view;
    let key = view.instance.to_string();
    let href = instance_href(&key);
    let follow = data.search.follow.then(|| {
        format!(
            "/live/logs?{}",
            super::call::query(&[("instance", Some(&key))])
        )
    });
    let content = html! {
        h1 { (key) }
        div #live {
            section.card #facts {
                dl.facts {
                    dt { "phase" } dd #phase data-phase=(view.phase.as_str()) { (phase_badge(view.phase)) }
                    dt { "health" } dd { (health_badge(view.health)) }
                    dt { "declared" } dd { (view.state.map(|s| s.to_string()).unwrap_or_else(|| "no (being destroyed)".into())) }
                    dt { "pid" } dd { (view.pid.map(|p| p.to_string()).unwrap_or_else(|| "—".into())) }
                    dt { "listen" } dd { (view.listen.clone().unwrap_or_else(|| "—".into())) }
                    dt { "uptime" } dd { (view.uptime_secs.map(span).unwrap_or_else(|| "—".into())) }
                    dt { "restarts" } dd { (view.restarts) }
                    @if !view.worker { dt { "weight" } dd { (view.weight) } }
                    dt { "last wake" } dd #last-wake { (view.last_wake_micros.map(super::instances::wake_latency).unwrap_or_else(|| "—".into())) }
                    @if let Some(usage) = &view.usage {
                        dt { "memory" } dd { (usage.memory_bytes.map(bytes).unwrap_or_else(|| "—".into())) }
                        dt { "CPU" } dd { (usage.cpu_usec.map(cpu).unwrap_or_else(|| "—".into())) }
                        dt { "disk" } dd { (usage.storage_bytes.map(bytes).unwrap_or_else(|| "—".into())) }
                    }
                    @if let Some(exit) = &view.last_exit {
                        dt { "last exit" } dd {
                            @if let Some(code) = exit.code { "code " (code) " " }
                            @if let Some(signal) = exit.signal { "signal " (signal) " " }
                            "at " (clock(exit.at_unix * 1000))
                        }
                    }
                    @if let Some(note) = &view.note { dt { "note" } dd { (note) } }
                    @if let Some(declared) = &view.declared_in { dt { "declared in" } dd { code { (declared) } } }
                }
            }
            (actions(session, &key, data))
            section.card {
                h2 { "Events" }
                @match &data.events {
                    Ok(events) => (events_table(events)),
                    Err(error) => div.flash.bad { (error) },
                }
            }
        }
        section.card #logs {
            h2 { "Logs" }
            form.filters method="get" action=(href) {
                label { "search" input type="search" name="search" value=[data.search.search.as_deref()]; }
                label { "since" input type="text" name="since" placeholder="2h or 2026-12-01T10:00:00Z" value=[data.search.since.as_deref()]; }
                label { "until" input type="text" name="until" placeholder="30m or a time" value=[data.search.until.as_deref()]; }
                label { "lines" input type="number" name="limit" min="1" max="10000" value=(data.search.limit); }
                label { "follow" input type="checkbox" name="follow" value="1" checked[data.search.follow]; }
                button type="submit" { "Search" }
            }
            @match &data.logs {
                Ok(lines) => {
                    @if lines.is_empty() && follow.is_none() { p.muted { "No lines match." } }
                    pre #log-lines {
                        @for line in lines {
                            div.line.(line.stream.as_str()) { time { (clock(line.at_unix_ms)) } " " (line.text) }
                        }
                    }
                    @if follow.is_some() { p.muted { "Following: new lines appear as they are written (needs JavaScript)." } }
                }
                Err(error) => div.flash.bad { (error) },
            }
        }
        section.card #spec {
            h2 { "Effective spec" }
            @match &data.spec {
                Some(spec) => pre.plain { (spec) },
                None => p.muted { "Not declared any more." },
            }
        }
    };
    layout(
        Frame {
            title: &key,
            nav: Nav::Instance,
            session: Some(session),
            events: Some(format!(
                "/live/events?{}",
                super::call::query(&[("instance", Some(&key))])
            )),
            follow,
        },
        content,
    )
}

fn actions(session: &Session, key: &str, data: &InstanceData) -> Markup {
    let allowed = data.allowed;
    let running = data.view.state == Some(crate::config::RunState::Running);
    let hidden = |name: &'static str, value: &str| {
        html! { input type="hidden" name=(name) value=(value); }
    };
    html! {
        @if allowed.restart || allowed.stop_start || allowed.weight {
            section.card #actions {
                h2 { "Actions" }
                @if allowed.restart {
                    form.inline method="post" action="/actions/restart" {
                        (hidden("csrf", &session.csrf)) (hidden("instance", key))
                        button #restart type="submit" { "Restart" }
                    }
                }
                @if allowed.stop_start {
                    @if running {
                        form.inline method="post" action="/actions/stop" {
                            (hidden("csrf", &session.csrf)) (hidden("instance", key))
                            button.danger #stop type="submit" { "Stop" }
                        }
                    } @else {
                        form.inline method="post" action="/actions/start" {
                            (hidden("csrf", &session.csrf)) (hidden("instance", key))
                            button #start type="submit" { "Start" }
                        }
                    }
                }
                @if allowed.weight {
                    form.inline method="post" action="/actions/weight" {
                        (hidden("csrf", &session.csrf)) (hidden("instance", key))
                        input type="number" name="weight" min="0" max="100" value=(data.view.weight) aria-label="weight";
                        button type="submit" { "Set weight" }
                    }
                }
            }
        }
    }
}
