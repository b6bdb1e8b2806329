//! `ten apply`: show the plan, confirm, apply it through the server, show progress.

use std::io::{BufRead, IsTerminal, Write};
use std::ops::ControlFlow;

use clap::Args;
use hyper::Method;

use crate::api::types::{ApplyProgress, ApplyRequest, PlanView};
use crate::render::{Detail, render_plan};

use super::client::{Client, Lines};
use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout, stdout_style};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Apply without asking for confirmation
    #[arg(long, visible_alias = "yes")]
    pub auto_approve: bool,

    /// Apply the plan `ten diff` showed with this token, without asking again; refuse if
    /// anything changed since
    #[arg(long, value_name = "TOKEN")]
    pub check: Option<String>,

    /// Print progress as newline-delimited JSON
    #[arg(long)]
    pub json: bool,

    /// One line per instance instead of every field
    #[arg(long)]
    pub summary: bool,
}

pub(super) fn run(global: &GlobalArgs, args: &ApplyArgs) -> Result<u8, CliError> {
    let client = Client::new(global)?;
    let view: PlanView = client.get("/api/plan")?;
    if view.diagnostics.iter().any(|d| d.is_error()) {
        return Err(CliError::new("the files have errors; nothing was applied")
            .hint("fix them (`ten validate` shows where) and apply again")
            .diagnostics(view.diagnostics));
    }
    let style = stdout_style();
    if !args.json {
        let detail = if args.summary {
            Detail::Summary
        } else {
            Detail::Full
        };
        print_stdout(&render_plan(&view.plan, detail, style))?;
    }
    if view.plan.is_empty() {
        if args.json {
            // The lines an apply prints, with nothing done: a script waiting for `finished`
            // gets it.
            let started = ApplyProgress::Started {
                token: view.plan.token.clone(),
                changes: 0,
            };
            let finished = ApplyProgress::Finished { ok: 0, failed: 0 };
            for progress in [started, finished] {
                print_stdout(&format!(
                    "{}\n",
                    serde_json::to_string(&progress).unwrap_or_default()
                ))?;
            }
        }
        return Ok(exit::OK);
    }
    if let Some(token) = &args.check
        && *token != view.plan.token
    {
        return Err(CliError::new(format!(
            "the plan changed since token {token} (now {}); nothing was applied",
            view.plan.token
        ))
        .hint("review the plan above and apply again"));
    }
    // A plan reviewed with `ten diff` and named by its token needs no second confirmation.
    if !args.auto_approve && args.check.is_none() && !confirm()? {
        print_stderr("Apply cancelled.\n");
        return Ok(exit::ERROR);
    }
    // Apply exactly the plan that was shown: the server refuses if it changed meanwhile.
    let request = ApplyRequest {
        token: Some(view.plan.token.clone()),
    };
    let mut lines = Lines::default();
    let (mut ok, mut failed) = (0, 0);
    let mut problem: Option<CliError> = None;
    client.stream(Method::POST, "/api/apply", Some(&request), |chunk| {
        lines.feed(chunk, |line| {
            if args.json {
                let _ = print_stdout(&format!("{line}\n"));
            }
            match serde_json::from_str::<ApplyProgress>(line) {
                Ok(ApplyProgress::Done {
                    target,
                    action,
                    ok: success,
                    message,
                    elapsed_ms,
                }) => {
                    if !args.json {
                        let mark = if success {
                            style.green("✓")
                        } else {
                            style.red("✗")
                        };
                        let _ = print_stdout(&format!(
                            "{mark} {target}: {action}: {message} ({:.1}s)\n",
                            elapsed_ms as f64 / 1000.0
                        ));
                    }
                }
                Ok(ApplyProgress::Finished {
                    ok: done,
                    failed: broken,
                }) => {
                    ok = done;
                    failed = broken;
                }
                Ok(ApplyProgress::Started { .. }) => {}
                Err(error) => {
                    problem = Some(CliError::new(format!(
                        "unexpected progress line {line:?}: {error}"
                    )))
                }
            }
            ControlFlow::Continue(())
        })
    })?;
    if let Some(problem) = problem {
        return Err(problem);
    }
    if !args.json {
        let summary = format!("Apply complete: {ok} done, {failed} failed.");
        let summary = if failed == 0 {
            style.green(&summary)
        } else {
            style.red(&summary)
        };
        print_stdout(&format!("\n{summary}\n"))?;
    }
    Ok(if failed == 0 { exit::OK } else { exit::ERROR })
}

/// Asks on the terminal; refuses without one.
fn confirm() -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(
            CliError::new("refusing to ask for confirmation without a terminal")
                .hint("pass --auto-approve to apply without asking"),
        );
    }
    print_stdout("\nApply these changes? [y/N] ")?;
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|error| CliError::new(format!("cannot read the answer: {error}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}
