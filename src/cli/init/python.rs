//! A Python project's service: uvicorn or gunicorn when its requirements name them (they are
//! given the tenant's port), else its script (`app.py`, `main.py`, `server.py`), else its
//! package with a `__main__.py`. Run through `uv run` or `poetry run` when the project is
//! locked by one, or its `.venv`.

use std::path::Path;

use super::guess::{GuessedService, Run, tenant_service};

/// Scripts that start an app, in the order they are looked for.
const SCRIPTS: [&str; 3] = ["app.py", "main.py", "server.py"];

/// The service, and what it was guessed from.
pub(super) fn service(dir: &Path, name: &str) -> (GuessedService, Vec<String>) {
    let (requirements, listed_in) = requirements(dir);
    let runner = Runner::of(dir);
    let named = |package: &str| requirements.iter().any(|name| name == package);
    let script = SCRIPTS.into_iter().find(|file| dir.join(file).is_file());
    let mut why = Vec::new();
    let mut under_src = false;
    let mut notes = Vec::new();
    let command = if named("uvicorn") {
        let (target, from) = app_target(dir, &["main.py", "app.py", "server.py"], "asgi");
        why.push(format!(
            "{listed_in} names uvicorn: it serves {target} ({from}) on each tenant's port"
        ));
        format!(
            "{} {target} --host 127.0.0.1 --port {{port}}",
            runner.program("uvicorn")
        )
    } else if named("gunicorn") {
        let (target, from) = app_target(dir, &["app.py", "main.py", "server.py"], "wsgi");
        why.push(format!(
            "{listed_in} names gunicorn: it serves {target} ({from}) on each tenant's port"
        ));
        format!(
            "{} --bind 127.0.0.1:{{port}} {target}",
            runner.program("gunicorn")
        )
    } else if let Some(script) = script {
        why.push(format!("{listed_in}, and {script} to run"));
        format!("{} {script}", runner.python())
    } else if let Some((package, in_src)) = main_package(dir) {
        why.push(format!(
            "{listed_in}, and the package {package} with a __main__.py: python -m {package}"
        ));
        under_src = in_src;
        format!("{} -m {package}", runner.python())
    } else {
        why.push(format!(
            "{listed_in}, but no app.py, main.py, server.py or package with a __main__.py: check the command"
        ));
        notes.push("No app.py found: put your app's command here.".into());
        format!("{} app.py", runner.python())
    };
    if let Some(why_runner) = runner.why() {
        why.push(why_runner);
    }
    notes.insert(0, format!("Guessed: {}. Check it.", why.join("; ")));
    let mut service = tenant_service(name, Run::Command(command), notes);
    if under_src {
        service
            .env
            .push(("PYTHONPATH", "src".into(), "the package is under src/"));
    }
    (service, why)
}

/// The names of the packages a project requires (lowercase, `_` as `-`), and where they were
/// found.
fn requirements(dir: &Path) -> (Vec<String>, String) {
    let mut names = Vec::new();
    let mut files = Vec::new();
    if let Ok(text) = std::fs::read_to_string(dir.join("requirements.txt")) {
        files.push("requirements.txt");
        names.extend(text.lines().filter_map(requirement_name));
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("pyproject.toml")) {
        files.push("pyproject.toml");
        if let Ok(document) = text.parse::<toml_edit::DocumentMut>() {
            let listed = document
                .get("project")
                .and_then(|project| project.get("dependencies"))
                .and_then(|dependencies| dependencies.as_array());
            names.extend(
                listed
                    .into_iter()
                    .flat_map(|array| array.iter())
                    .filter_map(|value| value.as_str())
                    .filter_map(requirement_name),
            );
            let poetry = document
                .get("tool")
                .and_then(|tool| tool.get("poetry"))
                .and_then(|poetry| poetry.get("dependencies"))
                .and_then(|dependencies| dependencies.as_table_like());
            names.extend(
                poetry
                    .into_iter()
                    .flat_map(|table| table.iter())
                    .filter_map(|(name, _)| requirement_name(name)),
            );
        }
    }
    (names, files.join(" and "))
}

/// The package a requirement line names (`uvicorn[standard]>=0.29` gives `uvicorn`).
fn requirement_name(line: &str) -> Option<String> {
    let line = line.split('#').next()?.trim();
    if line.starts_with('-') {
        return None;
    }
    let name: String = line
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    (!name.is_empty()).then(|| name.to_ascii_lowercase().replace('_', "-"))
}

/// What an ASGI or WSGI server is to serve: `main:app` from a script, else
/// `PROJECT.asgi:application` (`wsgi`) of a Django-style project; and what it was found in.
fn app_target(dir: &Path, scripts: &[&str], kind: &str) -> (String, String) {
    if let Some(script) = scripts.iter().find(|file| dir.join(file).is_file()) {
        let module = script.trim_end_matches(".py");
        return (format!("{module}:app"), script.to_string());
    }
    let file = format!("{kind}.py");
    if let Some(project) = subdirectories(dir)
        .into_iter()
        .find(|sub| dir.join(sub).join(&file).is_file())
    {
        return (
            format!("{project}.{kind}:application"),
            format!("{project}/{file}"),
        );
    }
    let module = scripts[0].trim_end_matches(".py");
    (
        format!("{module}:app"),
        format!("no {} found: check it", scripts[0]),
    )
}

/// A package with a `__main__.py`, at the top or under `src/` (then `true`).
fn main_package(dir: &Path) -> Option<(String, bool)> {
    let found = |base: &Path| {
        subdirectories(base)
            .into_iter()
            .find(|sub| base.join(sub).join("__main__.py").is_file())
    };
    found(dir)
        .map(|package| (package, false))
        .or_else(|| found(&dir.join("src")).map(|package| (package, true)))
}

/// The subdirectories of `dir` that can be Python packages, sorted.
fn subdirectories(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| {
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit())
        })
        .collect();
    found.sort();
    found
}

/// How the project's Python runs: through its lock's tool, its virtualenv, or the system's.
enum Runner {
    Uv,
    Poetry,
    Venv,
    System,
}

impl Runner {
    fn of(dir: &Path) -> Runner {
        if dir.join("uv.lock").is_file() {
            Runner::Uv
        } else if dir.join("poetry.lock").is_file() {
            Runner::Poetry
        } else if dir.join(".venv/bin/python").exists() {
            Runner::Venv
        } else {
            Runner::System
        }
    }

    fn program(&self, program: &str) -> String {
        match self {
            Runner::Uv => format!("uv run {program}"),
            Runner::Poetry => format!("poetry run {program}"),
            Runner::Venv => format!(".venv/bin/{program}"),
            Runner::System => program.to_string(),
        }
    }

    fn python(&self) -> String {
        match self {
            Runner::System => "python3".into(),
            _ => self.program("python"),
        }
    }

    fn why(&self) -> Option<String> {
        match self {
            Runner::Uv => Some("uv.lock: run through uv run".into()),
            Runner::Poetry => Some("poetry.lock: run through poetry run".into()),
            Runner::Venv => Some(".venv: run with its Python".into()),
            Runner::System => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command_of(files: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        service(dir.path(), "app").0.run.shown()
    }

    #[test]
    fn requirement_lines_give_package_names() {
        let names: Vec<Option<String>> = [
            "uvicorn[standard]>=0.29",
            "Flask==3.0 ; python_version > '3.8'",
            "typing_extensions",
            "# a comment",
            "-r base.txt",
            "",
        ]
        .into_iter()
        .map(requirement_name)
        .collect();
        assert_eq!(
            names,
            [
                Some("uvicorn".into()),
                Some("flask".into()),
                Some("typing-extensions".into()),
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn servers_named_in_the_requirements_serve_the_app_on_the_port() {
        assert_eq!(
            command_of(&[("requirements.txt", "fastapi\nuvicorn\n"), ("main.py", "")]),
            "uvicorn main:app --host 127.0.0.1 --port {port}"
        );
        assert_eq!(
            command_of(&[
                (
                    "pyproject.toml",
                    "[project]\nname = \"x\"\ndependencies = [\"gunicorn>=21\", \"django\"]\n"
                ),
                ("manage.py", ""),
                ("shop/wsgi.py", ""),
            ]),
            "gunicorn --bind 127.0.0.1:{port} shop.wsgi:application"
        );
        assert_eq!(
            command_of(&[
                (
                    "pyproject.toml",
                    "[tool.poetry.dependencies]\npython = \"^3.11\"\nuvicorn = \"*\"\n"
                ),
                ("poetry.lock", ""),
                ("app.py", ""),
            ]),
            "poetry run uvicorn app:app --host 127.0.0.1 --port {port}"
        );
    }

    #[test]
    fn a_script_or_a_package_runs_with_python() {
        assert_eq!(
            command_of(&[("requirements.txt", "requests\n"), ("app.py", "")]),
            "python3 app.py"
        );
        assert_eq!(
            command_of(&[("pyproject.toml", ""), ("uv.lock", ""), ("main.py", "")]),
            "uv run python main.py"
        );
        assert_eq!(
            command_of(&[("pyproject.toml", ""), ("notes/__main__.py", "")]),
            "python3 -m notes"
        );
        assert_eq!(
            command_of(&[("pyproject.toml", ""), ("src/notes/__main__.py", "")]),
            "python3 -m notes"
        );
        assert_eq!(command_of(&[("requirements.txt", "")]), "python3 app.py");
    }
}
