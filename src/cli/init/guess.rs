//! What `ten init` makes of a project directory: which services to write and why. Reads the
//! project's files (Procfile, pyproject.toml, requirements.txt, package.json, go.mod,
//! Cargo.toml); writes nothing.

use std::path::Path;

use super::{procfile, python};

/// What `ten init` guessed.
#[derive(Debug)]
pub(super) struct Guess {
    /// The kind of project: `procfile`, `python`, `node`, `go`, `rust`, `command` (given with
    /// --command) or `none`.
    pub kind: &'static str,
    /// What the kind was told by, for the first line of tenement.toml ("a Python project").
    pub described: String,
    pub services: Vec<GuessedService>,
    /// What was found, and what came of it: a line each, for stderr.
    pub why: Vec<String>,
}

/// A service to write.
#[derive(Debug, Default)]
pub(super) struct GuessedService {
    pub name: String,
    pub run: Run,
    /// `listen = "none"`: no port, no route.
    pub worker: bool,
    /// Comment lines above the command: where it came from, what to check.
    pub notes: Vec<String>,
    pub startup_timeout: Option<u32>,
    /// `idle_timeout`, written as a key (tenant apps sleep when idle).
    pub idle_timeout: Option<u32>,
    /// `health`, written as a key; otherwise shown commented.
    pub health: Option<&'static str>,
    /// Env entries beyond DATA_DIR: name, value, comment.
    pub env: Vec<(&'static str, String, &'static str)>,
    /// The id of the example instance.
    pub instance: &'static str,
}

/// How the service's command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Run {
    /// `command = "..."`, split like a shell (no shell runs).
    Command(String),
    /// `command = "sh"`, `args = ["-c", script]`.
    Shell(String),
}

impl Default for Run {
    fn default() -> Self {
        Run::Command(String::new())
    }
}

impl Run {
    /// As a user would type it.
    pub(super) fn shown(&self) -> String {
        match self {
            Run::Command(command) => command.clone(),
            Run::Shell(script) => format!("sh -c {}", shell_words::quote(script)),
        }
    }
}

/// The runnable example when nothing is recognized: Python's own web server, serving each
/// tenant's data directory.
const EXAMPLE_COMMAND: &str =
    "python3 -m http.server --bind 127.0.0.1 --directory {data_dir}/{name}/{id} {port}";

/// Guesses the services of the project in `dir`; `name` names the service of a one-service
/// project; `command`, when given, is its command (nothing is guessed then).
pub(super) fn guess(dir: &Path, name: &str, command: Option<&str>) -> Guess {
    let found = |file: &str| dir.join(file).is_file();
    let markers: Vec<&str> = [
        "Procfile",
        "pyproject.toml",
        "requirements.txt",
        "package.json",
        "go.mod",
        "Cargo.toml",
    ]
    .into_iter()
    .filter(|file| found(file))
    .collect();
    let mut guess = if let Some(command) = command {
        Guess {
            kind: "command",
            described: "the command given with --command".into(),
            services: vec![tenant_service(
                name,
                Run::Command(command.into()),
                Vec::new(),
            )],
            why: vec![format!("the command given: {command}")],
        }
    } else if found("Procfile") {
        from_procfile(dir, name)
    } else if found("pyproject.toml") || found("requirements.txt") {
        let (service, why) = python::service(dir, name);
        Guess {
            kind: "python",
            described: "a Python project".into(),
            services: vec![service],
            why,
        }
    } else if found("package.json") {
        node(dir, name)
    } else if found("go.mod") {
        compiled(name, "go", "go.mod", "go run .", 60)
    } else if found("Cargo.toml") {
        let mut guess = compiled(name, "rust", "Cargo.toml", "cargo run --release", 300);
        if let Some(package) = cargo_package(dir) {
            guess.services[0].notes.push(format!(
                "Faster: build once (`cargo build --release`) and run target/release/{package}."
            ));
        }
        guess
    } else {
        example(name)
    };
    let used = match guess.kind {
        "procfile" => vec!["Procfile"],
        "python" => vec!["pyproject.toml", "requirements.txt"],
        "node" => vec!["package.json"],
        "go" => vec!["go.mod"],
        "rust" => vec!["Cargo.toml"],
        _ => Vec::new(),
    };
    let unused: Vec<&str> = markers
        .into_iter()
        .filter(|marker| !used.contains(marker))
        .collect();
    if guess.kind != "command" && !unused.is_empty() {
        guess.why.push(format!(
            "also found {}: not used (--command runs something else)",
            unused.join(", ")
        ));
    }
    guess
}

/// A service with one process per tenant, asleep when idle, like the original's `ten init`.
pub(super) fn tenant_service(name: &str, run: Run, notes: Vec<String>) -> GuessedService {
    GuessedService {
        name: name.to_string(),
        run,
        notes,
        idle_timeout: Some(300),
        instance: "alice",
        ..GuessedService::default()
    }
}

/// The example: a service that runs as it is, for a directory with nothing ten recognizes.
fn example(name: &str) -> Guess {
    let mut service = tenant_service(
        name,
        Run::Command(EXAMPLE_COMMAND.into()),
        vec![
            "An example that runs as it is: Python's web server, serving each tenant's".into(),
            "data directory. Replace it with your app's command.".into(),
        ],
    );
    service.health = Some("/");
    Guess {
        kind: "none",
        described: "a new project".into(),
        services: vec![service],
        why: vec![
            "no Procfile, pyproject.toml, requirements.txt, package.json, go.mod or Cargo.toml here: an example service (Python's web server serving each tenant's data directory); --command sets yours".into(),
        ],
    }
}

fn from_procfile(dir: &Path, name: &str) -> Guess {
    let text = std::fs::read_to_string(dir.join("Procfile")).unwrap_or_default();
    let (services, mut why) = procfile::services(&text);
    if services.is_empty() {
        why.push("the Procfile names no process: an example service instead".into());
        let mut guess = example(name);
        guess.why = why;
        return guess;
    }
    let web = services.iter().filter(|service| !service.worker).count();
    why.insert(
        0,
        format!(
            "Procfile: {} process{} on a port (web), {} worker{} (listen = \"none\")",
            web,
            if web == 1 { "" } else { "es" },
            services.len() - web,
            if services.len() - web == 1 { "" } else { "s" },
        ),
    );
    Guess {
        kind: "procfile",
        described: "the processes of the Procfile".into(),
        services,
        why,
    }
}

/// A Node project: its `start` script, or what `npm start` would run without one.
fn node(dir: &Path, name: &str) -> Guess {
    let package: serde_json::Value = std::fs::read_to_string(dir.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let start = package["scripts"]["start"].as_str().map(str::trim);
    let main = package["main"].as_str();
    let (command, why) = match (start, main) {
        (Some(script), _) if direct_node(script) => (
            script.to_string(),
            format!(
                "package.json's start script, `{script}`, run directly: node gets ten's signals itself, without npm in between"
            ),
        ),
        (Some(script), _) => (
            "npm start".to_string(),
            format!("package.json has a start script (`{script}`): npm start runs it"),
        ),
        (None, Some(main)) if dir.join(main).is_file() => (
            format!("node {main}"),
            format!("package.json has no start script; its main is {main}"),
        ),
        (None, _) if dir.join("server.js").is_file() => (
            "node server.js".to_string(),
            "package.json has no start script; server.js is what npm start runs then".into(),
        ),
        (None, _) => (
            "npm start".to_string(),
            "package.json has no start script and there is no server.js: check the command".into(),
        ),
    };
    let notes = vec![format!("Guessed: {why}. Check it.")];
    let mut service = tenant_service(name, Run::Command(command.replace('{', "{{")), notes);
    service
        .env
        .push(("NODE_ENV", "production".into(), "what most Node apps check"));
    Guess {
        kind: "node",
        described: "a Node.js project".into(),
        services: vec![service],
        why: vec![why],
    }
}

/// Whether a start script is a plain `node FILE ...`, which ten can run without npm.
fn direct_node(script: &str) -> bool {
    script.starts_with("node ")
        && !script
            .chars()
            .any(|c| matches!(c, '$' | '`' | '|' | '&' | ';' | '<' | '>' | '(' | ')' | '*'))
        && shell_words::split(script).is_ok()
}

/// A Go or Rust project, built by its toolchain as it starts.
fn compiled(
    name: &str,
    kind: &'static str,
    marker: &str,
    command: &str,
    startup_timeout: u32,
) -> Guess {
    let notes = vec![format!(
        "From {marker}. It compiles before it serves: startup_timeout leaves it time."
    )];
    let mut service = tenant_service(name, Run::Command(command.into()), notes);
    service.startup_timeout = Some(startup_timeout);
    Guess {
        kind,
        described: match kind {
            "go" => "a Go module".into(),
            _ => "a Rust crate".into(),
        },
        services: vec![service],
        why: vec![format!(
            "{marker}: `{command}` (startup_timeout = {startup_timeout}: it compiles first)"
        )],
    }
}

/// The `[package] name` of Cargo.toml.
fn cargo_package(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let document: toml_edit::DocumentMut = text.parse().ok()?;
    document
        .get("package")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn command_of(files: &[(&str, &str)]) -> String {
        let dir = project(files);
        guess(dir.path(), "app", None).services[0].run.shown()
    }

    #[test]
    fn node_runs_a_plain_start_script_without_npm() {
        let start = |script: &str| {
            command_of(&[(
                "package.json",
                &format!(r#"{{"scripts": {{"start": "{script}"}}}}"#),
            )])
        };
        assert_eq!(start("node server.js --quiet"), "node server.js --quiet");
        assert_eq!(start("next start -p $PORT"), "npm start");
        assert_eq!(start("node a.js && node b.js"), "npm start");
        assert_eq!(
            command_of(&[
                ("package.json", r#"{"main": "lib/app.js"}"#),
                ("lib/app.js", "")
            ]),
            "node lib/app.js"
        );
        assert_eq!(
            command_of(&[("package.json", "{}"), ("server.js", "")]),
            "node server.js"
        );
        assert_eq!(command_of(&[("package.json", "not json")]), "npm start");
    }

    #[test]
    fn the_procfile_comes_first_and_what_is_not_used_is_said() {
        let dir = project(&[
            ("Procfile", "web: bin/server\n"),
            ("package.json", "{}"),
            ("go.mod", "module x\n"),
        ]);
        let guess = guess(dir.path(), "app", None);
        assert_eq!(guess.kind, "procfile");
        assert_eq!(guess.services[0].name, "web");
        assert!(
            guess
                .why
                .last()
                .unwrap()
                .contains("also found package.json, go.mod"),
            "{:?}",
            guess.why
        );
    }

    #[test]
    fn an_empty_procfile_gives_the_example() {
        let dir = project(&[("Procfile", "# nothing yet\n")]);
        let guess = guess(dir.path(), "app", None);
        assert_eq!(guess.kind, "none");
        assert!(guess.why[0].contains("names no process"), "{:?}", guess.why);
    }

    #[test]
    fn compiled_projects_get_time_to_build() {
        let dir = project(&[("Cargo.toml", "[package]\nname = \"shop\"\n")]);
        let guess = guess(dir.path(), "app", None);
        let service = &guess.services[0];
        assert_eq!(service.run.shown(), "cargo run --release");
        assert_eq!(service.startup_timeout, Some(300));
        assert!(
            service
                .notes
                .iter()
                .any(|note| note.contains("target/release/shop"))
        );
        assert_eq!(command_of(&[("go.mod", "module x\n")]), "go run .");
    }
}
