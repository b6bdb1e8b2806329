//! `ten events [TARGET] [-f]`: reconcile actions and lifecycle transitions, of all, or of an
//! instance, a service's instances or a group's (resolved by the server, as for `ten logs`).
//! None at all is said on stderr, as `ten logs` says it (not with `--json` or `-f`).

use std::ops::ControlFlow;

use clap::Args;
use hyper::Method;

use crate::api::types::Event;
use crate::desired::Selector;

use super::client::{Client, Lines};
use super::logs::append_target;
use super::table::clock;
use super::{CliError, GlobalArgs, exit, print_stdout, print_stream_note, stdout_style};

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only the events of SERVICE:ID, SERVICE's instances or group:NAME's (each line with its
    /// instance)
    #[arg(value_name = "TARGET")]
    pub target: Option<Selector>,

    /// Keep printing new events as they happen
    #[arg(short, long)]
    pub follow: bool,

    /// The last N events
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,

    /// Print JSON lines
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(global: &GlobalArgs, args: &EventsArgs) -> Result<u8, CliError> {
    let client = Client::new(global)?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    append_target(&mut query, args.target.as_ref());
    let query = query.finish();
    let events: Vec<Event> = client.get(&format!("/api/events?{query}&limit={}", args.limit))?;
    for event in &events {
        print_stdout(&format_event(event, args.json))?;
    }
    if args.follow {
        let mut lines = Lines::default();
        client.stream(
            Method::GET,
            &format!("/api/events/stream?{query}"),
            None::<&()>,
            |chunk| {
                lines.feed(chunk, |text| {
                    if print_stream_note(text) {
                        return ControlFlow::Continue(());
                    }
                    if let Some(data) = text.strip_prefix("data: ")
                        && let Ok(event) = serde_json::from_str::<Event>(data)
                        && print_stdout(&format_event(&event, args.json)).is_err()
                    {
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                })
            },
        )?;
    } else if events.is_empty() && args.limit > 0 && !args.json {
        let of = args
            .target
            .as_ref()
            .map(|target| format!(" of {target}"))
            .unwrap_or_default();
        super::print_stderr(&format!("no events{of} (yet)\n"));
    }
    Ok(exit::OK)
}

fn format_event(event: &Event, json: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string(event).unwrap_or_default());
    }
    let style = stdout_style();
    let instance = event
        .instance
        .as_ref()
        .map_or_else(|| "ten".to_string(), ToString::to_string);
    let reason = event
        .reason
        .as_ref()
        .map(|reason| format!(" {}", style.dim(&format!("({reason})"))))
        .unwrap_or_default();
    format!(
        "{} {instance:<20} {:<9} {}{reason}\n",
        style.dim(&clock(event.at_unix_ms)),
        event.action,
        event.message
    )
}
