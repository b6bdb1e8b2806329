//! The instances page: the table of every instance the session may see, filtered, sorted and
//! paged on the server (see `table`), each row linking to its instance page. Pure markup.

use maud::{Markup, html};

use crate::api::types::InstanceView;

use super::pages::{
    Frame, Nav, bytes, cpu, health_badge, instance_href, layout, phase_badge, span,
};
use super::session::Session;
use super::table::{PHASES, SortKey, TablePage, TableQuery};

/// What the filters offer: the declared services and groups.
pub(crate) struct Choices {
    pub services: Vec<String>,
    pub groups: Vec<String>,
}

pub(crate) fn instances_page(
    session: &Session,
    query: &TableQuery,
    page: &TablePage,
    choices: &Choices,
) -> Markup {
    let content = html! {
        h1 { "Instances" }
        form.filters method="get" action="/instances" {
            label { "service"
                select name="service" {
                    option value="" { "any" }
                    @for service in &choices.services {
                        option value=(service) selected[query.service.as_deref() == Some(service.as_str())] { (service) }
                    }
                }
            }
            @if !choices.groups.is_empty() {
                label { "group"
                    select name="group" {
                        option value="" { "any" }
                        @for group in &choices.groups {
                            option value=(group) selected[query.group.as_deref() == Some(group.as_str())] { (group) }
                        }
                    }
                }
            }
            label { "phase"
                select name="phase" {
                    option value="" { "any" }
                    @for phase in PHASES {
                        option value=(phase.as_str()) selected[query.phase == Some(phase)] { (phase.as_str()) }
                    }
                }
            }
            label { "instance contains"
                input type="search" name="q" value=[query.search.as_deref()];
            }
            input type="hidden" name="sort" value=(query.sort.as_str());
            @if query.descending { input type="hidden" name="desc" value="1"; }
            button type="submit" { "Filter" }
            a href="/instances" { "clear" }
        }
        div #live {
            (pager(query, page))
            table #instances {
                thead { tr {
                    (sort_header(query, SortKey::Instance, "instance", false))
                    (sort_header(query, SortKey::Phase, "phase", false))
                    (sort_header(query, SortKey::Health, "health", false))
                    (sort_header(query, SortKey::Uptime, "uptime", true))
                    (sort_header(query, SortKey::Weight, "weight", true))
                    (sort_header(query, SortKey::Restarts, "restarts", true))
                    (sort_header(query, SortKey::Memory, "memory", true))
                    (sort_header(query, SortKey::Cpu, "CPU", true))
                    (sort_header(query, SortKey::Disk, "disk", true))
                    (sort_header(query, SortKey::Wake, "last wake", true))
                    th { "listen" }
                } }
                tbody {
                    @for view in &page.rows { (row(view)) }
                }
            }
            @if page.rows.is_empty() { p.muted { "No instance matches." } }
            (pager(query, page))
        }
    };
    layout(
        Frame {
            title: "Instances",
            nav: Nav::Instances,
            session: Some(session),
            events: Some("/live/events".into()),
            follow: None,
        },
        content,
    )
}

fn row(view: &InstanceView) -> Markup {
    let key = view.instance.to_string();
    let usage = view.usage.as_ref();
    let dash = || "—".to_string();
    html! {
        tr data-instance=(key) {
            td { a href=(instance_href(&key)) { (key) } }
            td.phase-cell { (phase_badge(view.phase)) }
            td { (health_badge(view.health)) }
            td.num { (view.uptime_secs.map(span).unwrap_or_else(dash)) }
            td.num { @if view.worker { "—" } @else { (view.weight) } }
            td.num { (view.restarts) }
            td.num { (usage.and_then(|u| u.memory_bytes).map(bytes).unwrap_or_else(dash)) }
            td.num { (usage.and_then(|u| u.cpu_usec).map(cpu).unwrap_or_else(dash)) }
            td.num { (usage.and_then(|u| u.storage_bytes).map(bytes).unwrap_or_else(dash)) }
            td.num { (view.last_wake_micros.map(wake_latency).unwrap_or_else(dash)) }
            td.muted { (view.listen.clone().unwrap_or_default()) }
        }
    }
}

/// A wake latency in microseconds, as milliseconds ("6.1 ms").
pub(crate) fn wake_latency(micros: u64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

fn sort_header(query: &TableQuery, key: SortKey, label: &str, numeric: bool) -> Markup {
    let here = query.sort == key;
    // A second click on the column sorted reverses it; numbers start from the largest.
    let descending = if here { !query.descending } else { numeric };
    let arrow = match (here, query.descending) {
        (true, false) => " ▲",
        (true, true) => " ▼",
        _ => "",
    };
    html! {
        th.num[numeric] { a href=(query.to_url(1, Some((key, descending)))) { (label) (arrow) } }
    }
}

fn pager(query: &TableQuery, page: &TablePage) -> Markup {
    html! {
        div.pages {
            span.matching data-count=(page.matching) { (page.matching) " instances" }
            @if page.pages > 1 {
                @if page.page > 1 {
                    a href=(query.to_url(1, None)) { "« first" }
                    a href=(query.to_url(page.page - 1, None)) { "‹ previous" }
                }
                span { "page " (page.page) " of " (page.pages) }
                @if page.page < page.pages {
                    a href=(query.to_url(page.page + 1, None)) { "next ›" }
                    a href=(query.to_url(page.pages, None)) { "last »" }
                }
            }
        }
    }
}
