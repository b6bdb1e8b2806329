//! The dashboard's frame and its first pages, as HTML (maud: escaped by default): the
//! layout every page shares, the login form, the overview; and how numbers, times and
//! phases are shown. Pure: the data comes in, markup goes out.

use std::time::{Duration, UNIX_EPOCH};

use maud::{DOCTYPE, Markup, html};

use crate::api::types::{Diagnostic, Event, InstanceView, PlanView, StatusView};
use crate::observed::{Health, Phase};
use crate::render::{Detail, Style, render_each, render_plan};

use super::session::{Flash, Session};

/// Which part of the dashboard a page is, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Instances,
    Instance,
    Login,
}

/// What a page shows around its content.
pub(crate) struct Frame<'a> {
    pub title: &'a str,
    pub nav: Nav,
    pub session: Option<&'a Session>,
    /// The event stream that refreshes `#live` (with JavaScript).
    pub events: Option<String>,
    /// The log stream an instance page follows.
    pub follow: Option<String>,
}

pub(crate) fn layout(frame: Frame<'_>, content: Markup) -> Markup {
    let session = frame.session;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " · ten" }
                link rel="stylesheet" href="/assets/dash.css";
                @if session.is_some() {
                    // Without JavaScript, the page refreshes itself.
                    noscript { meta http-equiv="refresh" content="10"; }
                }
                script src="/assets/dash.js" defer {}
            }
            body data-events=[frame.events] data-follow=[frame.follow] {
                header {
                    a.brand href="/" { "ten" }
                    @if let Some(session) = session {
                        @if session.scope.is_admin() {
                            a.here[frame.nav == Nav::Overview] href="/" { "Overview" }
                            a.here[frame.nav == Nav::Instances] href="/instances" { "Instances" }
                        } @else {
                            a.here[frame.nav != Nav::Instances] href="/" { "My instance" }
                        }
                        span.who { "signed in: " (session.scope) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    @if let Some(flash) = session.and_then(|s| s.flash.as_ref()) {
                        (flash_box(flash))
                    }
                    (content)
                }
            }
        }
    }
}

fn flash_box(flash: &Flash) -> Markup {
    html! {
        div.flash.ok[flash.ok].bad[!flash.ok] role="status" { (flash.message) }
    }
}

/// The login form: all that is shown without a session. `problem`: why the last try failed.
pub(crate) fn login(problem: Option<&str>) -> Markup {
    let content = html! {
        form.login method="post" action="/login" {
            h1 { "Sign in to ten" }
            @if let Some(problem) = problem {
                div.flash.bad role="alert" { (problem) }
            }
            label for="token" { "API token (admin or tenant)" }
            input #token type="password" name="token" autocomplete="off" required autofocus;
            button.primary type="submit" { "Sign in" }
            p.muted {
                "The admin token is in " code { "{data_dir}/api_token" } "; a tenant token is made by "
                code { "ten token-gen --tenant SERVICE:ID" } ". It is exchanged for a session cookie."
            }
        }
    };
    layout(
        Frame {
            title: "Sign in",
            nav: Nav::Login,
            session: None,
            events: None,
            follow: None,
        },
        content,
    )
}

/// A page that says only why it cannot be shown.
pub(crate) fn problem_page(session: &Session, title: &str, message: &str) -> Markup {
    layout(
        Frame {
            title,
            nav: Nav::Overview,
            session: Some(session),
            events: None,
            follow: None,
        },
        html! { h1 { (title) } div.flash.bad role="alert" { (message) } },
    )
}

/// What the overview shows: the status, the plan, every instance and the recent events.
pub(crate) struct Overview {
    pub status: Result<StatusView, String>,
    pub plan: Result<PlanView, String>,
    pub instances: Vec<InstanceView>,
    pub events: Result<Vec<Event>, String>,
}

pub(crate) fn overview(session: &Session, data: &Overview) -> Markup {
    let counts = super::table::phase_counts(&data.instances);
    let content = html! {
        h1 { "Overview" }
        div #live {
            section.card {
                h2 { (data.instances.len()) " instances" }
                div.counts #phase-counts {
                    @for (phase, count) in &counts {
                        a.count href={ "/instances?phase=" (phase.as_str()) } data-phase=(phase.as_str()) {
                            b.phase.(phase.as_str()) { (count) } (phase.as_str())
                        }
                    }
                }
            }
            @match &data.status {
                Ok(status) => (status_section(status)),
                Err(error) => section.card { h2 { "Status" } div.flash.bad { (error) } },
            }
            @match (&data.plan, &data.status) {
                (Ok(plan), Ok(status)) => (plan_section(session, plan, status)),
                (Err(error), _) => section.card { h2 { "Pending plan" } div.flash.bad { (error) } },
                _ => {}
            }
            section.card {
                h2 { "Recent events" }
                @match &data.events {
                    Ok(events) => (events_table(events)),
                    Err(error) => div.flash.bad { (error) },
                }
            }
        }
    };
    layout(
        Frame {
            title: "Overview",
            nav: Nav::Overview,
            session: Some(session),
            events: Some("/live/events".into()),
            follow: None,
        },
        content,
    )
}

fn status_section(status: &StatusView) -> Markup {
    html! {
        section.card #config {
            h2 { "Configuration" }
            p {
                code { (status.config) } " · generation " (status.generation)
                " · auto_apply = " (status.auto_apply)
                @if status.valid { " · " span.phase.running { "valid" } }
            }
            @if let Some(held) = &status.held {
                div.flash.bad { "held: " (held) }
            }
            (diagnostics(&status.diagnostics))
            @if !status.frozen.is_empty() {
                p.muted {
                    "kept at their last valid declaration: "
                    @for key in &status.frozen { code { (key) } " " }
                }
            }
        }
    }
}

/// Config problems with file:line and the snippet, as `ten validate` prints them.
pub(crate) fn diagnostics(diagnostics: &[Diagnostic]) -> Markup {
    html! {
        @if !diagnostics.is_empty() {
            div #config-errors {
                p.flash.bad {
                    (diagnostics.len()) " problem(s) in the files; the last valid configuration keeps running"
                }
                @for diagnostic in diagnostics {
                    @let place = match (diagnostic.line, diagnostic.column) {
                        (Some(line), Some(column)) => format!("{}:{line}:{column}", diagnostic.file.display()),
                        (Some(line), None) => format!("{}:{line}", diagnostic.file.display()),
                        _ => diagnostic.file.display().to_string(),
                    };
                    div.diagnostic data-place=(place) {
                        pre.plain { (render_each(std::slice::from_ref(diagnostic), std::path::Path::new(""), Style::PLAIN).trim_end()) }
                    }
                }
            }
        }
    }
}

fn plan_section(session: &Session, plan: &PlanView, status: &StatusView) -> Markup {
    let applies_itself = status.auto_apply && plan.held.is_none();
    html! {
        section.card #plan {
            h2 { "Pending plan" }
            @if plan.plan.is_empty() {
                p.muted { "No changes: what runs is what the files declare." }
            } @else {
                pre.plain { (render_plan(&plan.plan, Detail::Full, Style::PLAIN)) }
                @if let Some(held) = &plan.held { p.flash.bad { "held: " (held) } }
                @if applies_itself {
                    p.muted { "auto_apply is on: ten applies these changes itself." }
                } @else {
                    form method="post" action="/actions/apply" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        input type="hidden" name="plan" value=(plan.plan.token);
                        button.primary type="submit" { "Apply" }
                        " " span.muted { "(this plan only: if it changed meanwhile, nothing is applied)" }
                    }
                }
            }
        }
    }
}

pub(crate) fn events_table(events: &[Event]) -> Markup {
    html! {
        @if events.is_empty() {
            p.muted { "No events yet." }
        } @else {
            table.events {
                thead { tr { th { "time (UTC)" } th { "instance" } th { "action" } th { "message" } } }
                tbody {
                    @for event in events.iter().rev() {
                        tr {
                            td { (clock(event.at_unix_ms)) }
                            td {
                                @if let Some(key) = &event.instance {
                                    a href=(instance_href(&key.to_string())) { (key) }
                                }
                            }
                            td { (event.action) }
                            td {
                                (event.message)
                                @if let Some(reason) = &event.reason { span.muted { " (" (reason) ")" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The instance page's address.
pub(crate) fn instance_href(key: &str) -> String {
    format!("/instances/{}", super::call::segment(key))
}

pub(crate) fn phase_badge(phase: Phase) -> Markup {
    html! { span.phase.(phase.as_str()) { (phase.as_str()) } }
}

pub(crate) fn health_badge(health: Health) -> Markup {
    let text = health.to_string();
    html! { span.health.(text) { (text) } }
}

/// `2026-12-06 09:14:03` of a time in milliseconds since the epoch (UTC).
pub(crate) fn clock(at_unix_ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(at_unix_ms);
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

/// `3d 4h`, `5m 2s`: the two largest units.
pub(crate) fn span(seconds: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut left = seconds;
    for (size, name) in units {
        if left >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{}{name}", left / size));
            left %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

/// `12.3 MiB`.
pub(crate) fn bytes(count: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// CPU time used, in seconds.
pub(crate) fn cpu(usec: u64) -> String {
    format!("{:.1} s", usec as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times_read_well() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(59), "59s");
        assert_eq!(span(3_725), "1h 2m");
        assert_eq!(span(2 * 86_400 + 5), "2d 5s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(5 * 1024 * 1024 + 512 * 1024), "5.5 MiB");
        assert_eq!(cpu(1_250_000), "1.2 s");
        assert_eq!(clock(0), "1970-01-01 00:00:00");
    }

    #[test]
    fn the_login_page_has_the_form_and_nothing_else() {
        let page = login(Some("<b>no</b>")).into_string();
        assert!(page.contains(r#"action="/login""#), "{page}");
        assert!(page.contains("&lt;b&gt;no&lt;/b&gt;"), "escaped: {page}");
        assert!(!page.contains("/logout"));
        assert!(!page.contains("data-events"));
    }
}
