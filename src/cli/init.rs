//! `ten init [DIR]`: a new project: a tenement.toml with one service to start from, and an
//! empty instances/ directory. Never overwrites anything.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::CONFIG_FILE;

use super::{CliError, GlobalArgs, exit, print_stdout, stdout_style};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's directory (made if missing)
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
}

/// The tenement.toml `ten init` writes: one service that runs as it is (Python's web server,
/// serving each tenant's own data directory), with the keys a user reaches for first.
const STARTER: &str = r#"# tenement.toml: service templates and settings. One tenant per file in instances/
# (instances/web/alice.toml; an empty file is enough), or `ten spawn web:alice`.
# `ten validate` checks this file, `ten config` shows every key with its default.

[settings]
data_dir = "tenement-data"        # per-tenant data in {data_dir}/{service}/{id}

[service.web]
# One process per tenant. It listens on 127.0.0.1:$PORT (ten gives each tenant its own port)
# and is reached as ID.web.DOMAIN through ten's proxy. Replace it with your app.
command = "python3 -m http.server --bind 127.0.0.1 --directory {data_dir}/{name}/{id} {port}"
health = "/"                      # GET must answer 2xx
idle_timeout = 300                # seconds without a request before it sleeps; 0 = never

[service.web.env]
DATA_DIR = "{data_dir}/{name}/{id}"
"#;

pub(super) fn run(_global: &GlobalArgs, args: &InitArgs) -> Result<u8, CliError> {
    let config = args.dir.join(CONFIG_FILE);
    if config.exists() {
        return Err(CliError::new(format!(
            "{} exists already; nothing was changed",
            config.display()
        ))
        .hint("`ten validate` checks it; `ten serve` runs it"));
    }
    let instances = args.dir.join("instances");
    create_dir(&instances)?;
    write_new(&config, STARTER)?;
    let style = stdout_style();
    let shown = |path: &Path| path.display().to_string();
    print_stdout(&format!(
        "{} {} and {}/\n\nNext:\n  ten serve                  run it (in {}); then, in another terminal:\n  ten spawn web:alice        declare a tenant and start it\n  curl http://alice.web.localhost:8080/\n",
        style.green("Created"),
        shown(&config),
        shown(&instances),
        shown(&args.dir),
    ))?;
    Ok(exit::OK)
}

fn create_dir(path: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(path)
        .map_err(|error| CliError::new(format!("cannot create {}: {error}", path.display())))
}

/// Writes `text` to a file that must not exist yet.
fn write_new(path: &Path, text: &str) -> Result<(), CliError> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|error| CliError::new(format!("cannot write {}: {error}", path.display())))
}
