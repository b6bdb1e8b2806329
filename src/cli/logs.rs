//! `ten logs [S:ID] [-f]`: captured output of instances.

use std::ops::ControlFlow;

use clap::Args;
use hyper::Method;

use crate::api::types::LogLine;
use crate::desired::Selector;

use super::client::{Client, Lines};
use super::table::clock;
use super::{CliError, GlobalArgs, exit, print_stdout, stdout_style};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only SERVICE:ID, SERVICE's instances or group:NAME's (interleaved by time, each line
    /// with its instance)
    #[arg(value_name = "TARGET")]
    pub target: Option<Selector>,

    /// Keep printing new lines as they come
    #[arg(short, long)]
    pub follow: bool,

    /// Only lines containing this text (case-insensitive)
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,

    /// Only stdout or stderr
    #[arg(long, value_parser = ["stdout", "stderr"])]
    pub level: Option<String>,

    /// The last N lines
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub limit: usize,

    /// Print JSON lines
    #[arg(long)]
    pub json: bool,
}

fn query(args: &LogsArgs) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    match &args.target {
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
    if let Some(search) = &args.search {
        query.append_pair("search", search);
    }
    if let Some(level) = &args.level {
        query.append_pair("level", level);
    }
    query.finish()
}

pub(super) fn run(global: &GlobalArgs, args: &LogsArgs) -> Result<u8, CliError> {
    let client = Client::new(global)?;
    let query = query(args);
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
        super::print_stderr(&format!("no output captured from {what} (yet)\n"));
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
