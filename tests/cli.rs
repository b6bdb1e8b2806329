//! End-to-end tests of the `ten` binary: exit codes, output streams, JSON, colors, config
//! discovery, and `diff --offline` against a recorded state that points at real processes.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use ten::desired::load;
use ten::observed::{Phase, write_record};
use ten::runtime::proc::process_start_time;

fn ten(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(args)
        .current_dir(dir)
        .env_remove("TENEMENT_CONFIG")
        .env_remove("TENEMENT_DATA_DIR")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("run ten")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const CONFIG: &str = "[service.notes]\ncommand = \"python3 app.py\"\nhealth = \"/health\"\n\n[service.notes.env]\nLOG_LEVEL = \"info\"\n";

/// A project directory with tenement.toml and two instance files.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(&dir.path().join("tenement.toml"), CONFIG);
    support::write_file(&dir.path().join("instances/notes/alice.toml"), "");
    support::write_file(
        &dir.path().join("instances/notes/bob.toml"),
        "weight = 50\n",
    );
    dir
}

/// Processes started by a test, killed and reaped when it ends, pass or fail.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Records the project's instances as running in real `sleep` processes.
fn record_running(dir: &Path) -> Processes {
    let desired = load(&dir.join("tenement.toml")).desired.unwrap();
    let mut observed = support::observed_as_applied(&desired);
    observed.boot_id = Some(ten::runtime::proc::boot_id().to_string());
    let mut children = Processes(Vec::new());
    for instance in observed.instances.values_mut() {
        let child = Command::new("sleep").arg("600").spawn().unwrap();
        instance.pid = Some(child.id());
        instance.pid_start_time = process_start_time(child.id());
        children.0.push(child);
    }
    write_record(&desired.config.settings.data_dir, &observed).unwrap();
    children
}

#[test]
fn validate_accepts_the_bundled_example() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = ten(&root, &["validate", "--config", "examples/notes"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "examples/notes/tenement.toml is valid: 1 service, 2 instances (2 instance files).\n"
    );
}

#[test]
fn validate_reports_every_problem_on_stderr_and_exits_1() {
    let dir = project();
    support::write_file(
        &dir.path().join("tenement.toml"),
        "[service.notes]\ncomand = \"x\"\nweight = 101\n",
    );
    support::write_file(&dir.path().join("instances/notes/bob.toml"), "wieght = 1\n");
    let output = ten(dir.path(), &["validate"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let errors = stderr(&output);
    for expected in [
        "--> tenement.toml:2:1",
        "did you mean `command`?",
        "--> tenement.toml:3:10",
        "--> instances/notes/bob.toml:1:1",
        "3 problems found; nothing was changed.",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
}

#[test]
fn validate_json_lists_diagnostics() {
    let dir = project();
    support::write_file(&dir.path().join("instances/notes/Bad_ID.toml"), "");
    let output = ten(dir.path(), &["validate", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["valid"], false);
    assert_eq!(
        json["diagnostics"][0]["file"],
        "instances/notes/Bad_ID.toml"
    );
    assert_eq!(json["diagnostics"][0]["severity"], "error");
}

#[test]
fn diff_offline_exit_codes() {
    let dir = project();

    let pending = ten(dir.path(), &["diff", "--offline", "--detailed-exitcode"]);
    assert_eq!(pending.status.code(), Some(2), "{}", stderr(&pending));
    assert!(stdout(&pending).contains("Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy."));
    assert!(stderr(&pending).contains("no recorded state"));

    let plain = ten(dir.path(), &["diff", "--offline"]);
    assert_eq!(
        plain.status.code(),
        Some(0),
        "changes without --detailed-exitcode exit 0"
    );

    let _processes = record_running(dir.path());
    let converged = ten(dir.path(), &["diff", "--offline", "--detailed-exitcode"]);
    assert_eq!(
        converged.status.code(),
        Some(0),
        "{}{}",
        stdout(&converged),
        stderr(&converged)
    );
    assert_eq!(
        stdout(&converged),
        "No changes. Desired state matches running instances.\n"
    );

    support::write_file(
        &dir.path().join("tenement.toml"),
        &CONFIG.replace("\"info\"", "\"debug\""),
    );
    let replaced = ten(dir.path(), &["diff", "--offline", "--detailed-exitcode"]);
    assert_eq!(replaced.status.code(), Some(2));
    assert!(
        stdout(&replaced).contains("~ env.LOG_LEVEL = \"info\" -> \"debug\"   # forces restart")
    );

    support::write_file(&dir.path().join("tenement.toml"), "[service.notes\n");
    let broken = ten(dir.path(), &["diff", "--offline", "--detailed-exitcode"]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stderr(&broken).contains("--> tenement.toml:1:"),
        "{}",
        stderr(&broken)
    );
    assert_eq!(stdout(&broken), "");
}

#[test]
fn diff_offline_sees_processes_that_died() {
    let dir = project();
    let mut processes = record_running(dir.path());
    let victim = &mut processes.0[0];
    let pid = victim.id();
    victim.kill().unwrap();
    victim.wait().unwrap();
    let output = ten(dir.path(), &["diff", "--offline", "--detailed-exitcode"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    assert!(
        text.contains("ten noticed changes made outside of ten:"),
        "{text}"
    );
    assert!(
        text.contains(&format!("# notes:alice: process {pid} is gone")),
        "{text}"
    );
    assert!(text.contains("  ~ notes:alice"), "{text}");
    assert!(text.contains("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy."));
}

#[test]
fn diff_json_is_machine_readable() {
    let dir = project();
    let output = ten(dir.path(), &["diff", "--offline", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["summary"]["add"], 2);
    assert_eq!(json["changes"][0]["target"], "notes:alice");
    assert_eq!(json["changes"][0]["action"], "create");
    assert_eq!(json["token"].as_str().unwrap().len(), 16);
}

#[test]
fn a_record_from_a_newer_ten_is_refused() {
    let dir = project();
    support::write_file(
        &dir.path().join("tenement-data/state.json"),
        "{\"format_version\": 99}",
    );
    let output = ten(dir.path(), &["diff", "--offline"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("written by a newer ten"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn colors_only_on_request_or_a_terminal() {
    let dir = project();
    let plain = ten(dir.path(), &["diff", "--offline"]);
    assert!(!stdout(&plain).contains('\x1b'), "no escapes into a pipe");
    let forced = Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(["diff", "--offline"])
        .current_dir(dir.path())
        .env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(
        stdout(&forced).contains("\x1b[32m+\x1b[0m"),
        "{}",
        stdout(&forced)
    );
    let no_color = Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(["diff", "--offline"])
        .current_dir(dir.path())
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!stdout(&no_color).contains('\x1b'), "NO_COLOR wins");
}

#[test]
fn output_into_a_closed_pipe_does_not_panic() {
    let dir = project();
    for id in 0..3000 {
        support::write_file(&dir.path().join(format!("instances/notes/t{id}.toml")), "");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(["diff", "--offline"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    // The reader is gone (like `| head -1`); ten must notice quietly.
    let output = child.wait_with_output().unwrap();
    assert_eq!(first_line, "ten will perform the following actions:\n");
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn config_is_found_from_subdirectories_and_the_environment() {
    let dir = project();
    let nested = dir.path().join("instances/notes");
    let output = ten(&nested, &["validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let elsewhere = tempfile::tempdir().unwrap();
    let missing = ten(elsewhere.path(), &["validate"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no tenement.toml in"));
    assert!(stderr(&missing).contains("hint: "), "{}", stderr(&missing));

    let from_env = Command::new(env!("CARGO_BIN_EXE_ten"))
        .arg("validate")
        .current_dir(elsewhere.path())
        .env("TENEMENT_CONFIG", dir.path().join("tenement.toml"))
        .output()
        .unwrap();
    assert_eq!(from_env.status.code(), Some(0), "{}", stderr(&from_env));
}

#[test]
fn config_shows_the_effective_configuration() {
    let dir = project();
    support::write_file(
        &dir.path().join("instances/notes/alice.toml"),
        "[env]\nAPI_TOKEN = \"s3cret\"\n",
    );
    let text = ten(dir.path(), &["config"]);
    assert_eq!(text.status.code(), Some(0));
    let toml = stdout(&text);
    assert!(
        toml.contains("[service.notes]\ncommand = \"python3 app.py\""),
        "{toml}"
    );
    assert!(
        toml.contains("restart = \"on-failure\""),
        "defaults are filled in"
    );
    assert!(toml.contains("notes = [\"alice\", \"bob\"]"));

    let json = ten(dir.path(), &["config", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["settings"]["max_restarts"], 3);
    assert_eq!(value["service"]["notes"]["stop_timeout"], 10);

    let alice = ten(dir.path(), &["config", "--instance", "notes:alice"]);
    assert!(
        stdout(&alice).contains("API_TOKEN = \"(sensitive)\""),
        "{}",
        stdout(&alice)
    );
    let revealed = ten(
        dir.path(),
        &["config", "--instance", "notes:alice", "--show-sensitive"],
    );
    assert!(stdout(&revealed).contains("API_TOKEN = \"s3cret\""));

    let unknown = ten(dir.path(), &["config", "--instance", "notes:zed"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("notes:zed is not declared"));
    let bad = ten(dir.path(), &["config", "--instance", "notes:Zed"]);
    assert_eq!(bad.status.code(), Some(2), "clap rejects a bad key");
    assert!(
        stderr(&bad).contains("invalid instance id \"Zed\""),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn config_shows_the_memory_budget() {
    let dir = project();
    support::write_file(
        &dir.path().join("tenement.toml"),
        &format!("[settings]\nmemory_target = \"80%\"\nmemory_limit_total = \"2GB\"\n\n{CONFIG}"),
    );
    let text = stdout(&ten(dir.path(), &["config"]));
    assert!(text.contains("memory_target = \"80%\""), "{text}");
    assert!(
        text.contains(&format!("memory_limit_total = {}", 2u64 << 30)),
        "{text}"
    );
    let json = ten(dir.path(), &["config", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["settings"]["memory_target"], "80%");
    assert_eq!(value["settings"]["memory_limit_total"], 2u64 << 30);

    // Unset, they are absent from the TOML (as every unset optional key) and null in JSON.
    support::write_file(&dir.path().join("tenement.toml"), CONFIG);
    let json = ten(dir.path(), &["config", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(value["settings"]["memory_target"].is_null());
    assert!(
        value["settings"]
            .as_object()
            .unwrap()
            .contains_key("memory_target")
    );
}

/// `text` with every run of whitespace made one space (help text is wrapped to a width).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn help_describes_every_command() {
    use clap::CommandFactory;
    let cli = ten::cli::Cli::command();
    let commands: Vec<&clap::Command> =
        cli.get_subcommands().filter(|c| !c.is_hide_set()).collect();
    let names: Vec<&str> = commands.iter().map(|command| command.get_name()).collect();
    for expected in ["validate", "config", "diff", "serve", "token-gen"] {
        assert!(names.contains(&expected), "{names:?}");
    }

    let output = ten(Path::new("."), &["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = stdout(&output);
    // The names listed under "Commands:" (each at two spaces; wrapped lines are indented more).
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let mut expected = names.clone();
    expected.push("help");
    assert_eq!(listed, expected, "{help}");
    let help = one_line(&help);
    for command in &commands {
        let name = command.get_name();
        let about = command
            .get_about()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(!about.trim().is_empty(), "`ten {name}` has no description");
        assert!(
            help.contains(&format!(" {name} {}", one_line(&about))),
            "`ten --help` does not describe {name} as {about:?}"
        );
        let output = ten(Path::new("."), &[name, "--help"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "ten {name} --help: {}",
            stderr(&output)
        );
        let own = one_line(&stdout(&output));
        let described = command
            .get_long_about()
            .or(command.get_about())
            .unwrap()
            .to_string();
        assert!(
            own.starts_with(&one_line(&described)) && own.contains(&format!("Usage: ten {name} ")),
            "ten {name} --help: {own}"
        );
    }

    let diff_help = stdout(&ten(Path::new("."), &["diff", "--help"]));
    assert!(diff_help.contains("--detailed-exitcode"));
    assert!(diff_help.contains("--offline"));
}

#[test]
fn a_recorded_stopped_instance_is_not_started() {
    let dir = project();
    support::write_file(
        &dir.path().join("instances/notes/bob.toml"),
        "state = \"stopped\"\n",
    );
    let _processes = record_running(dir.path());
    let desired = load(&dir.path().join("tenement.toml")).desired.unwrap();
    let bob = ten::names::InstanceKey::parse("notes:bob").unwrap();
    // bob is recorded stopped (observed_as_applied follows the declared state).
    let record = ten::observed::read_record(&desired.config.settings.data_dir)
        .unwrap()
        .unwrap();
    assert_eq!(record.observed.instances[&bob].phase, Phase::Stopped);
    let output = ten(dir.path(), &["diff", "--offline", "--detailed-exitcode"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
}

#[test]
fn a_verb_on_instances_given_no_target_says_a_target_or_all() {
    let dir = project();
    for verb in ["stop", "start", "restart"] {
        let output = ten(dir.path(), &[verb]);
        assert_eq!(output.status.code(), Some(2), "ten {verb}");
        assert!(
            stderr(&output).contains("<TARGET|--all>"),
            "ten {verb}: {}",
            stderr(&output)
        );
        let both = ten(dir.path(), &[verb, "web:a", "--all"]);
        assert_eq!(both.status.code(), Some(2), "ten {verb} web:a --all");
    }
}

#[test]
fn logs_with_a_limit_of_0_is_refused_before_anything_is_asked() {
    let dir = project();
    let output = ten(dir.path(), &["logs", "--limit", "0"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("--limit 0"), "{}", stderr(&output));
}
