//! `ten init [DIR]`: a new project: a commented tenement.toml whose services are guessed from
//! the project (a Procfile's processes; a Python, Node, Go or Rust app; else a runnable
//! example), and an instances/ directory with an example instance. Says what it guessed and
//! why on stderr. Never overwrites anything.

mod guess;
mod procfile;
mod python;
mod text;

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::CONFIG_FILE;
use crate::names::{check_label, suggest_label};

use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout, stderr_style, stdout_style};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The project's directory (made if missing)
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,

    /// Name of the service [default: the directory's name]; a Procfile's processes are named
    /// by the Procfile
    #[arg(long)]
    pub name: Option<String>,

    /// The service's command, instead of a guess
    #[arg(long)]
    pub command: Option<String>,

    /// Print what was written (files and their text) as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// A file `ten init` writes: its path relative to the project, and its text.
struct NewFile {
    path: PathBuf,
    text: String,
}

pub(super) fn run(_global: &GlobalArgs, args: &InitArgs) -> Result<u8, CliError> {
    let config = args.dir.join(CONFIG_FILE);
    if config.exists() {
        return Err(CliError::new(format!(
            "{} exists already; nothing was changed",
            config.display()
        ))
        .hint(
            "`ten validate` checks it and `ten serve` runs it; to start over, move it away first",
        ));
    }
    create_dir(&args.dir)?;
    let name = service_name(&args.dir, args.name.as_deref())?;
    let guess = guess::guess(&args.dir, &name.0, args.command.as_deref());
    let mut why = guess.why.clone();
    if guess.kind != "procfile" {
        why.insert(0, format!("service {} ({})", name.0, name.1));
    } else if args.name.is_some() {
        why.push("--name is not used: the Procfile names the services".into());
    }

    let instances = args.dir.join("instances");
    create_dir(&instances)?;
    let mut written = Vec::new();
    for service in &guess.services {
        let path = PathBuf::from("instances")
            .join(&service.name)
            .join(format!("{}.toml", service.instance));
        if args.dir.join(&path).exists() {
            why.push(format!("{} exists already: kept as it is", path.display()));
            continue;
        }
        create_dir(&instances.join(&service.name))?;
        let file = NewFile {
            path,
            text: text::instance_file(service),
        };
        write_new(&args.dir.join(&file.path), &file.text)?;
        written.push(file);
    }
    let file = NewFile {
        path: PathBuf::from(CONFIG_FILE),
        text: text::tenement_toml(&guess),
    };
    write_new(&config, &file.text)?;
    written.insert(0, file);

    let style = stderr_style();
    let mut said = format!("{} {}\n", style.bold("ten init:"), guess.described);
    for line in &why {
        said.push_str(&format!("  {line}\n"));
    }
    for service in &guess.services {
        let role = if service.worker {
            " (worker, no port)"
        } else {
            ""
        };
        said.push_str(&format!(
            "  {}{role}: {}\n",
            service.name,
            style.green(&service.run.shown())
        ));
    }
    print_stderr(&said);
    if args.json {
        print_stdout(&json(&args.dir, &guess, &why, &written))?;
    } else {
        print_stdout(&next_steps(&args.dir, &guess, &written))?;
    }
    Ok(exit::OK)
}

/// The service's name: `--name` (checked), else the directory's name as a DNS label, else
/// `app`; and where it came from.
fn service_name(dir: &Path, given: Option<&str>) -> Result<(String, &'static str), CliError> {
    if let Some(name) = given {
        return match check_label(name) {
            Ok(()) => Ok((name.to_string(), "--name")),
            Err(error) => {
                let hint = match suggest_label(name) {
                    Some(suggestion) => format!("try --name {suggestion}"),
                    None => "lowercase letters, digits and '-', like `notes`".into(),
                };
                Err(CliError::new(format!(
                    "--name {name:?}: {error}; a service name is a DNS label"
                ))
                .hint(hint))
            }
        };
    }
    let from_dir = std::fs::canonicalize(dir)
        .ok()
        .and_then(|dir| {
            dir.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .and_then(|name| match check_label(&name) {
            Ok(()) => Some(name),
            Err(_) => suggest_label(&name),
        });
    Ok(match from_dir {
        Some(name) => (name, "the directory's name; --name sets another"),
        None => (
            "app".into(),
            "the directory's name is no DNS label; --name sets another",
        ),
    })
}

fn json(dir: &Path, guess: &guess::Guess, why: &[String], written: &[NewFile]) -> String {
    let services: Vec<serde_json::Value> = guess
        .services
        .iter()
        .map(|service| {
            serde_json::json!({
                "name": service.name,
                "command": service.run.shown(),
                "listen": if service.worker { "none" } else { "port" },
                "instance": format!("{}:{}", service.name, service.instance),
            })
        })
        .collect();
    let files: Vec<serde_json::Value> = written
        .iter()
        .map(|file| serde_json::json!({"path": file.path, "text": file.text}))
        .collect();
    let mut text = serde_json::to_string_pretty(&serde_json::json!({
        "format_version": 1,
        "dir": dir,
        "kind": guess.kind,
        "why": why,
        "services": services,
        "files": files,
    }))
    .unwrap_or_default();
    text.push('\n');
    text
}

/// What was made, and what to do next.
fn next_steps(dir: &Path, guess: &guess::Guess, written: &[NewFile]) -> String {
    let style = stdout_style();
    let paths: Vec<String> = written
        .iter()
        .map(|file| match dir == Path::new(".") {
            true => file.path.display().to_string(),
            false => dir.join(&file.path).display().to_string(),
        })
        .collect();
    let mut text = format!("{} {}\n\nNext:\n", style.green("Created"), paths.join(", "));
    text.push_str(
        "  ten validate               check it (edit the command first if the guess is wrong)\n",
    );
    text.push_str(&format!(
        "  ten serve                  run it (in {}); then, in another terminal:\n",
        dir.display()
    ));
    match guess.services.iter().find(|service| !service.worker) {
        Some(service) if guess.kind != "procfile" => {
            let (name, id) = (&service.name, service.instance);
            let pad = 13usize.saturating_sub(name.len()).max(1);
            text.push_str(&format!(
                "  curl http://{id}.{name}.localhost:8080/\n  ten spawn {name}:bob{:pad$}another tenant\n",
                ""
            ));
        }
        Some(service) => text.push_str(&format!(
            "  curl http://{}.localhost:8080/\n  ten ps\n",
            service.name
        )),
        None => text.push_str("  ten ps\n"),
    }
    text
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
