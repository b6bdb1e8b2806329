//! `ten config`: the effective configuration after defaults and merging.

use clap::Args;

use crate::names::InstanceKey;
use crate::render::config_view::{effective_config, instance_value, to_toml};
use crate::render::json::to_pretty;

use super::context::Context;
use super::{CliError, GlobalArgs, exit, print_stdout};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print JSON instead of TOML
    #[arg(long)]
    pub json: bool,

    /// Show the values of env variables that look secret (*TOKEN*, *SECRET*, *PASSWORD*, *KEY*)
    #[arg(long)]
    pub show_sensitive: bool,

    /// Show the effective spec of one instance instead (template merged with its file)
    #[arg(long, value_name = "SERVICE:ID")]
    pub instance: Option<InstanceKey>,
}

pub(super) fn run(global: &GlobalArgs, args: &ConfigArgs) -> Result<u8, CliError> {
    let context = Context::load(global)?;
    let Some(desired) = context.report_diagnostics() else {
        return Ok(exit::ERROR);
    };
    let (value, header) = match &args.instance {
        Some(key) => {
            let spec = desired.instances.get(key).ok_or_else(|| {
                CliError::new(format!("{key} is not declared")).hint(format!(
                    "declare it with an instance file {}/{}/{}.toml, or list it in [instances]",
                    context
                        .shown(&desired.config.settings.instances_dir)
                        .display(),
                    key.service,
                    key.id
                ))
            })?;
            let header = format!("Effective spec of {key} ({{port}} is allocated when it starts)");
            (instance_value(spec, args.show_sensitive), header)
        }
        None => {
            let header = format!(
                "Effective configuration of {} (defaults filled in, {} declared)",
                context.shown(&context.config_path).display(),
                crate::render::counted(desired.instances.len(), "instance")
            );
            (effective_config(desired, args.show_sensitive), header)
        }
    };
    let text = if args.json {
        to_pretty(&value)
    } else {
        to_toml(&value, &header)
    };
    print_stdout(&text)?;
    Ok(exit::OK)
}
