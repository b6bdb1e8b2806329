//! What the unit of `ten install` says, found: the config (which must be valid) and its
//! settings, the running binary and whether it is a build's, the serve flags, whether the
//! user exists, how long stopping the tenants may take. Writes nothing and runs nothing: must
//! not import `unit_file` or `systemd`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::context::find_config_path;
use crate::cli::{CliError, GlobalArgs, print_stderr, stderr_style};
use crate::config::ServiceTemplate;
use crate::config::parse::normalize;
use crate::names::ServiceName;
use crate::render::render_diagnostics;

use super::unit::UnitSpec;
use super::{DEFAULT_UNIT_DIR, InstallArgs};

pub(super) fn user_exists(user: &str) -> bool {
    let found = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    };
    matches!(found, Ok(Some(_)))
}

/// Whether `exe` is in a cargo target directory (`target/debug/ten`), which `cargo clean` or
/// the next build changes under the unit's feet. Cargo marks its target directories with
/// CACHEDIR.TAG.
pub(super) fn in_build_dir(exe: &Path) -> bool {
    exe.ancestors()
        .nth(2)
        .is_some_and(|dir| dir.join("CACHEDIR.TAG").is_file())
}

pub(super) fn absolute(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    normalize(&cwd.join(path))
}

/// Finds what the unit needs: the config (and its settings), the binary, the flags.
pub(super) fn unit_spec(
    global: &GlobalArgs,
    args: &InstallArgs,
    name: String,
) -> Result<UnitSpec, CliError> {
    let config_path = find_config_path(global)?;
    let mut diagnostics = Vec::new();
    let config = crate::desired::read_config(&config_path, &mut diagnostics).config;
    let Some(config) = config else {
        print_stderr(&render_diagnostics(
            &diagnostics,
            config_path.parent().unwrap_or(Path::new("")),
            stderr_style(),
        ));
        return Err(
            CliError::new("the config has errors; `ten serve` would not start with it")
                .hint("fix them (`ten validate` shows every problem) and run `ten install` again"),
        );
    };
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|error| CliError::new(format!("cannot find the running ten binary: {error}")))?;
    let mut serve_args = Vec::new();
    if let Some(port) = args.port {
        serve_args.extend(["--port".to_string(), port.to_string()]);
    }
    if let Some(bind) = args.bind {
        serve_args.extend(["--bind".to_string(), bind.to_string()]);
    }
    if let Some(domain) = &args.domain {
        serve_args.extend(["--domain".to_string(), domain.clone()]);
    }
    let longest_stop_timeout_secs = shutdown_secs(&config.services);
    let unit_dir = absolute(&args.unit_dir);
    Ok(UnitSpec {
        name,
        exe,
        config_path,
        data_dir: global.data_dir.as_deref().map(absolute),
        serve_args,
        user: args.user.clone(),
        privileged_ports: config.settings.tls.enabled
            && [
                config.settings.tls.https_port,
                config.settings.tls.http_port,
            ]
            .iter()
            .any(|port| (1..1024).contains(port)),
        keep_tenants_on_exit: config.settings.keep_tenants_on_exit,
        longest_stop_timeout_secs,
        unit_dir: (unit_dir != Path::new(DEFAULT_UNIT_DIR)).then_some(unit_dir),
    })
}

/// How long stopping every tenant may take: one `stop_order` after another, each as long as
/// its longest `stop_timeout`, and between two orders the 5 s ten gives a stop beyond it.
pub(super) fn shutdown_secs(services: &BTreeMap<ServiceName, ServiceTemplate>) -> u64 {
    let mut longest: BTreeMap<i32, u64> = BTreeMap::new();
    for service in services.values() {
        let secs = service.stop_timeout.as_secs_f64().ceil() as u64;
        let entry = longest.entry(service.stop_order).or_default();
        *entry = (*entry).max(secs);
    }
    if longest.is_empty() {
        return 10;
    }
    let between = crate::reconcile::core::GRACE.as_secs() * (longest.len() as u64 - 1);
    longest.values().sum::<u64>() + between
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_stop_one_stop_order_after_another() {
        let services = |text: &str| {
            let mut diagnostics = Vec::new();
            crate::config::parse_config(
                Path::new("/p/tenement.toml"),
                text.into(),
                &mut diagnostics,
            )
            .config
            .unwrap()
            .services
        };
        let one_order = "[service.a]\ncommand = \"a\"\nstop_timeout = 7\n[service.b]\ncommand = \"b\"\nstop_timeout = 3\n";
        assert_eq!(shutdown_secs(&services(one_order)), 7);
        let two_orders = format!("{one_order}stop_order = 10\n");
        assert_eq!(shutdown_secs(&services(&two_orders)), 7 + 5 + 3);
    }
}
