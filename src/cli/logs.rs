//! `ten logs [TARGET] [-f] [--search Q] [--since T] [--until T]`: captured output of
//! instances; with a time range or a search, every line kept on disk (across restarts of the
//! tenant and of ten), else the last lines in memory.

use std::ops::ControlFlow;

use clap::Args;
use hyper::Method;

use crate::api::types::LogLine;
use crate::desired::Selector;
use crate::runtime::logs::{MAX_SEARCH_LIMIT, parse_time_bound, unix_millis};

use super::client::{Client, Lines};
use super::table::clock;
use super::{CliError, GlobalArgs, exit, print_stdout, print_stream_note, stdout_style};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only SERVICE:ID, SERVICE's instances or group:NAME's (interleaved by time, each line
    /// with its instance)
    #[arg(value_name = "TARGET")]
    pub target: Option<Selector>,

    /// Keep printing new lines as they come
    #[arg(short, long)]
    pub follow: bool,

    /// Only lines containing this text (case-insensitive), searched in every line kept on
    /// disk (see `log_retention`), across restarts of the instance and of ten
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,

    /// Only lines captured at or after this: a duration before now ("2h", "30m", "7d"), a UTC
    /// time ("2026-12-06T08:00:00Z", "2026-12-06 08:00", "2026-12-06") or Unix milliseconds
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,

    /// Only lines captured before this (a duration before now, a UTC time, as --since)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Only stdout or stderr
    #[arg(long, value_parser = ["stdout", "stderr"])]
    pub level: Option<String>,

    /// The last N lines (that match); at most 100000
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: usize,

    /// Print one JSON object a line: at_unix_ms, instance, stream, text
    #[arg(long)]
    pub json: bool,
}

/// `--since` and `--until` as Unix milliseconds, checked here so that a mistake is said
/// before anything is asked.
fn time_bounds(args: &LogsArgs) -> Result<(Option<u64>, Option<u64>), CliError> {
    let now = unix_millis();
    let bound = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| {
                parse_time_bound(text, now).map_err(|error| {
                    CliError::new(format!("--{flag}: {error}"))
                        .hint("e.g. `ten logs web:alice --since 2h --until 30m`")
                })
            })
            .transpose()
    };
    let (since, until) = (bound("since", &args.since)?, bound("until", &args.until)?);
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(CliError::new("--since is not before --until: no line can match")
            .hint("a duration counts back from now: --since 2h --until 1h is the hour before the last"));
    }
    if args.limit == 0 {
        return Err(CliError::new("--limit 0 asks for no line")
            .hint("give at least 1; to wait for new lines only, use -f with --limit 1"));
    }
    if args.limit > MAX_SEARCH_LIMIT {
        return Err(CliError::new(format!(
            "--limit {} is more than {MAX_SEARCH_LIMIT} lines",
            args.limit
        ))
        .hint("narrow the lines with --since, --until or --search"));
    }
    Ok((since, until))
}

/// The query parameter that names `target` (`instance`, `service` or `group`), as the logs
/// and the events take it; nothing for all.
pub(super) fn append_target(
    query: &mut form_urlencoded::Serializer<'_, String>,
    target: Option<&Selector>,
) {
    match target {
        Some(Selector::Instance(key)) => {
            query.append_pair("instance", &key.to_string());
        }
        Some(Selector::Service(service)) => {
            query.append_pair("service", service.as_str());
        }
        Some(Selector::Group(group)) => {
            query.append_pair("group", group.as_str());
        }
        Some(Selector::All) | None => {}
    }
}

fn query(args: &LogsArgs, (since, until): (Option<u64>, Option<u64>)) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    append_target(&mut query, args.target.as_ref());
    if let Some(search) = &args.search {
        query.append_pair("search", search);
    }
    if let Some(level) = &args.level {
        query.append_pair("level", level);
    }
    if let Some(since) = since {
        query.append_pair("since", &since.to_string());
    }
    if let Some(until) = until {
        query.append_pair("until", &until.to_string());
    }
    query.finish()
}

pub(super) fn run(global: &GlobalArgs, args: &LogsArgs) -> Result<u8, CliError> {
    let bounds = time_bounds(args)?;
    let client = Client::new(global)?;
    let query = query(args, bounds);
    let lines: Vec<LogLine> = client.get(&format!("/api/logs?{query}&limit={}", args.limit))?;
    let with_instance = !matches!(args.target, Some(Selector::Instance(_)));
    for line in &lines {
        print_stdout(&format_line(line, with_instance, args.json))?;
    }
    if args.follow {
        let mut splitter = Lines::default();
        client.stream(
            Method::GET,
            &format!("/api/logs/stream?{query}"),
            None::<&()>,
            |chunk| {
                splitter.feed(chunk, |text| {
                    if print_stream_note(text) {
                        return ControlFlow::Continue(());
                    }
                    if let Some(data) = text.strip_prefix("data: ")
                        && let Ok(line) = serde_json::from_str::<LogLine>(data)
                        && print_stdout(&format_line(&line, with_instance, args.json)).is_err()
                    {
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                })
            },
        )?;
    } else if lines.is_empty() {
        let what = args
            .target
            .as_ref()
            .map_or("any instance".to_string(), ToString::to_string);
        let filtered = args.search.is_some() || args.since.is_some() || args.until.is_some();
        let message = if filtered {
            format!("no line of {what} kept on disk matches\n")
        } else {
            format!("no output captured from {what} (yet)\n")
        };
        super::print_stderr(&message);
    }
    Ok(exit::OK)
}

fn format_line(line: &LogLine, with_instance: bool, json: bool) -> String {
    if json {
        return format!("{}\n", serde_json::to_string(line).unwrap_or_default());
    }
    let style = stdout_style();
    let stream = match line.stream {
        crate::runtime::logs::Stream::Stdout => "out",
        crate::runtime::logs::Stream::Stderr => "err",
    };
    let prefix = if with_instance {
        format!("{} ", line.instance)
    } else {
        String::new()
    };
    format!(
        "{} {prefix}{} {}\n",
        style.dim(&clock(line.at_unix_ms)),
        style.dim(stream),
        line.text
    )
}
