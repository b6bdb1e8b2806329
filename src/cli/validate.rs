//! `ten validate`: check tenement.toml and instances/, report every problem.

use clap::Args;

use crate::render::validation_json;

use super::context::{Context, skip_drop};
use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout};
use crate::runtime::process::host_cannot_run;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print the result as JSON (with every diagnostic) on stdout
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(global: &GlobalArgs, args: &ValidateArgs) -> Result<u8, CliError> {
    let context = Context::load(global)?;
    let loaded = &context.loaded;
    let (services, instances) = loaded.desired.as_ref().map_or((0, 0), |desired| {
        (desired.config.services.len(), desired.instances.len())
    });
    let code = if loaded.desired.is_some() {
        exit::OK
    } else {
        exit::ERROR
    };
    if args.json {
        let valid = loaded.desired.is_some();
        print_stdout(&validation_json(
            valid,
            services,
            instances,
            &loaded.diagnostics,
        ))?;
        return Ok(code);
    }
    // What the files ask of this host (not an error in the files: a warning).
    if let Some(desired) = &loaded.desired {
        for (name, service) in &desired.config.services {
            let limited = service.memory_limit_mb.is_some()
                || service.cpu_shares.is_some()
                || service.pids_limit.is_some();
            if let Some(problem) = host_cannot_run(service.isolation, limited) {
                print_stderr(&format!(
                    "warning: [service.{name}]: {problem}; its instances will not start on this host as it is\n"
                ));
            }
        }
    }
    if context.report_diagnostics().is_some() {
        print_stdout(&format!(
            "{} is valid: {}, {} ({}).\n",
            context.shown(&context.config_path).display(),
            crate::render::counted(services, "service"),
            crate::render::counted(instances, "instance"),
            crate::render::counted(loaded.instance_files, "instance file"),
        ))?;
    }
    skip_drop(context);
    Ok(code)
}
