//! `ten diff`: the plan that would take running instances to what the files declare.

use std::path::Path;

use clap::Args;

use crate::api::types::PlanView;
use crate::observed::{ObservedState, RecordError, read_record, record_path};
use crate::plan::plan;
use crate::render::{Detail, plan_json, render_plan, validation_json};
use crate::runtime::proc::process_alive;

use super::client::{Client, print_diagnostics};
use super::context::{Context, skip_drop};
use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout, stderr_style, stdout_style};

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Compare with the state recorded in the data directory instead of asking the server
    /// (works while no server runs)
    #[arg(long)]
    pub offline: bool,

    /// Exit 0 when there are no changes, 1 on error, 2 when changes are pending (for CI)
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Print the plan as JSON (with a `format_version`)
    #[arg(long)]
    pub json: bool,

    /// One line per instance instead of every field, for large plans
    #[arg(long)]
    pub summary: bool,
}

pub(super) fn run(global: &GlobalArgs, args: &DiffArgs) -> Result<u8, CliError> {
    if args.offline {
        offline(global, args)
    } else {
        online(global, args)
    }
}

/// The plan of the running server: its files, its processes.
fn online(global: &GlobalArgs, args: &DiffArgs) -> Result<u8, CliError> {
    let client = Client::new(global)?;
    let view: PlanView = client.get("/api/plan")?;
    let has_errors = view.diagnostics.iter().any(|d| d.is_error());
    if args.json {
        print_stdout(&plan_json(&view.plan, &view.diagnostics))?;
    } else {
        print_diagnostics(&view.diagnostics);
        if has_errors {
            print_stderr(&format!(
                "{} the server keeps running the last valid configuration until the files are fixed\n",
                stderr_style().dim("note:")
            ));
        } else {
            let detail = if args.summary {
                Detail::Summary
            } else {
                Detail::Full
            };
            print_stdout(&render_plan(&view.plan, detail, stdout_style()))?;
        }
        if let Some(held) = &view.held {
            print_stderr(&format!("{} {held}\n", stderr_style().yellow("held:")));
        }
    }
    Ok(if has_errors {
        exit::ERROR
    } else if args.detailed_exitcode && !view.plan.is_empty() {
        exit::CHANGES
    } else {
        exit::OK
    })
}

/// The plan against the state recorded in the data directory, without a server.
fn offline(global: &GlobalArgs, args: &DiffArgs) -> Result<u8, CliError> {
    let context = Context::load(global)?;
    let desired = if args.json {
        context.loaded.desired.as_ref()
    } else {
        context.report_diagnostics()
    };
    let Some(desired) = desired else {
        if args.json {
            print_stdout(&validation_json(false, 0, 0, &context.loaded.diagnostics))?;
        }
        return Ok(exit::ERROR);
    };
    let data_dir = context
        .data_dir(global)
        .unwrap_or_else(|| desired.config.settings.data_dir.clone());
    let mut observed = read_observed(&context, &data_dir)?;
    // Pids recorded in another boot (or by a ten that did not say which) name other processes.
    let this_boot = observed.boot_id.as_deref() == Some(crate::runtime::proc::boot_id());
    observed.forget_gone_processes(|pid, start_time| this_boot && process_alive(pid, start_time));
    let plan = plan(desired, &observed);
    let text = if args.json {
        plan_json(&plan, &context.loaded.diagnostics)
    } else {
        let detail = if args.summary {
            Detail::Summary
        } else {
            Detail::Full
        };
        render_plan(&plan, detail, stdout_style())
    };
    print_stdout(&text)?;
    let code = if args.detailed_exitcode && !plan.is_empty() {
        exit::CHANGES
    } else {
        exit::OK
    };
    skip_drop((context, observed, plan, text));
    Ok(code)
}

/// The recorded observed state; none recorded means nothing runs. A corrupt record is
/// reported and treated as empty; a record from a newer ten is an error.
fn read_observed(context: &Context, data_dir: &Path) -> Result<ObservedState, CliError> {
    let style = stderr_style();
    let shown = context.shown(&record_path(data_dir));
    match read_record(data_dir) {
        Ok(Some(record)) => Ok(record.observed),
        Ok(None) => {
            print_stderr(&format!(
                "{} no recorded state at {}: planning as if nothing runs yet\n",
                style.dim("note:"),
                shown.display()
            ));
            Ok(ObservedState::default())
        }
        Err(error @ RecordError::Corrupt { .. }) => {
            print_stderr(&format!(
                "{} {error}\n{} planning as if nothing runs; the server rewrites the record when it starts\n",
                style.yellow("warning:"),
                style.dim("note:"),
            ));
            Ok(ObservedState::default())
        }
        Err(error) => Err(CliError::new(error.to_string())),
    }
}
