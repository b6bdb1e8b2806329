//! `ten import`: the corpus in testdata/import/ (a directory per case, holding the file to
//! import under its usual name) imported and compared with its snapshot (the report and every
//! file written), each generated tenement.toml read by ten's own parser; the command's preview,
//! writing and refusals; and an imported Procfile served by `ten serve`.
//! Update snapshots after an intended change with `INSTA_UPDATE=always cargo test --test import`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::server::{TestServer, port_range};
use ten::import::{Imported, Source, detect_format, import, render_report};
use ten::render::Style;

/// The environment the corpus is imported with (supervisord's `%(ENV_X)s`).
fn environment() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("HOME".to_string(), "/home/deploy".to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ])
}

/// Imports `path` as `ten import` would, from `/srv/app` on the host `box`.
fn import_file(path: &Path) -> Imported {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let env = environment();
    // The corpus's scripts are not on this machine: in `pm2_binaries`, `engine` stands for
    // a compiled program and `unreadable` for a file that cannot be read; every other
    // script is text.
    let is_binary = |path: &str| {
        if path.ends_with("/engine") {
            Some(true)
        } else if path.ends_with("/unreadable") {
            None
        } else {
            Some(false)
        }
    };
    let source = Source {
        text: &text,
        name: &name,
        dir: "/srv/app",
        host: "box",
        env: &env,
        is_binary: &is_binary,
    };
    let format = detect_format(&name, &text).unwrap();
    import(&source, format).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The report, then each file.
fn rendered(imported: &Imported) -> String {
    let mut out = render_report(imported, Style::PLAIN);
    for file in &imported.files {
        out.push_str(&format!("\n-- {} --\n{}", file.path, file.text));
    }
    out
}

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/import");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flat_map(|case| std::fs::read_dir(case.unwrap().path()).unwrap())
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn the_corpus_imports_as_its_snapshots_say() {
    let files = corpus();
    assert!(files.len() >= 10, "the corpus has {} cases", files.len());
    let formats: std::collections::BTreeSet<String> = files
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(path).unwrap();
            detect_format(&name, &text).unwrap().as_str().to_string()
        })
        .collect();
    assert_eq!(
        formats.len(),
        4,
        "every format is in the corpus: {formats:?}"
    );
    insta::glob!("../testdata/import", "*/*", |path| {
        insta::assert_snapshot!(rendered(&import_file(path)));
    });
}

#[test]
fn every_imported_config_is_read_by_ten_s_parser_without_a_problem() {
    // Every generated tenement.toml (with its instance files) goes through ten's own reader
    // and must load with no diagnostic at all, warnings included.
    for path in corpus() {
        let imported = import_file(&path);
        let dir = tempfile::tempdir().unwrap();
        for file in &imported.files {
            support::write_file(&dir.path().join(&file.path), &file.text);
        }
        let loaded = ten::desired::load(&dir.path().join("tenement.toml"));
        let problems: Vec<String> = loaded
            .diagnostics
            .iter()
            .map(|diagnostic| format!("{}: {}", diagnostic.location(), diagnostic.message))
            .collect();
        assert!(
            problems.is_empty() && loaded.desired.is_some(),
            "{}: the generated files have problems:\n{}\n\n{}",
            path.display(),
            problems.join("\n"),
            rendered(&imported)
        );
    }
}

fn ten(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ten"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("TENEMENT_CONFIG")
        .output()
        .expect("run ten")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const PROCFILE: &str = "web: python3 -m http.server $PORT --bind 127.0.0.1\nrelease: ./migrate\n";

const SUPERVISORD: &str =
    "[program:mailer]\ncommand = python3 mailer.py\nautostart = false\nstartretries = 7\n";

#[test]
fn without_output_the_files_are_shown_as_a_diff_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(&dir.path().join("Procfile"), PROCFILE);
    let output = ten(dir.path(), &["import", "Procfile"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("--- /dev/null\n+++ b/tenement.toml\n"),
        "{text}"
    );
    assert!(
        text.contains("+command = \"python3 -m http.server {port} --bind 127.0.0.1\""),
        "{text}"
    );
    assert!(text.contains("Not imported (1):"), "{text}");
    assert!(text.contains("Nothing was written."), "{text}");
    assert!(!dir.path().join("tenement.toml").exists());

    // Against a tenement.toml that is there: a diff of it, still writing nothing.
    support::write_file(
        &dir.path().join("tenement.toml"),
        "[service.old]\ncommand = \"x\"\n",
    );
    let output = ten(dir.path(), &["import", "Procfile"]);
    let text = stdout(&output);
    assert!(
        text.contains("--- a/tenement.toml\n+++ b/tenement.toml\n"),
        "{text}"
    );
    assert!(text.contains("-[service.old]"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tenement.toml")).unwrap(),
        "[service.old]\ncommand = \"x\"\n"
    );
}

#[test]
fn output_writes_the_files_and_never_overwrites_a_different_config_without_force() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(&dir.path().join("supervisord.conf"), SUPERVISORD);
    let target = dir.path().join("project");
    let target_arg = target.display().to_string();
    let output = ten(
        dir.path(),
        &["import", "supervisord.conf", "--output", &target_arg],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("Wrote tenement.toml, instances/mailer/0.toml"));
    let config = std::fs::read_to_string(target.join("tenement.toml")).unwrap();
    assert!(config.contains("[service.mailer]\n"), "{config}");
    assert!(
        config.contains("# not imported: startretries = 7"),
        "{config}"
    );
    let instance = std::fs::read_to_string(target.join("instances/mailer/0.toml")).unwrap();
    assert!(instance.ends_with("state = \"stopped\"\n"), "{instance}");

    // The same again: nothing to do.
    let output = ten(
        dir.path(),
        &["import", "supervisord.conf", "--output", &target_arg],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("Nothing to write"),
        "{}",
        stdout(&output)
    );

    // An edited tenement.toml is not overwritten...
    let edited = format!("{config}\n# my own line\n");
    support::write_file(&target.join("tenement.toml"), &edited);
    let output = ten(
        dir.path(),
        &["import", "supervisord.conf", "--output", &target_arg],
    );
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(error.contains("-# my own line"), "{error}");
    assert!(error.contains("pass --force to overwrite"), "{error}");
    assert_eq!(
        std::fs::read_to_string(target.join("tenement.toml")).unwrap(),
        edited
    );

    // ...unless asked to.
    let output = ten(
        dir.path(),
        &[
            "import",
            "supervisord.conf",
            "--output",
            &target_arg,
            "--force",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(target.join("tenement.toml")).unwrap(),
        config
    );
}

#[test]
fn yes_writes_into_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(&dir.path().join("Procfile"), PROCFILE);
    let output = ten(dir.path(), &["import", "Procfile", "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let config = std::fs::read_to_string(dir.path().join("tenement.toml")).unwrap();
    assert!(config.contains("[service.web]"), "{config}");
}

#[test]
fn json_gives_the_files_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(&dir.path().join("Procfile"), PROCFILE);
    let output = ten(dir.path(), &["import", "Procfile", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["format"], "procfile");
    assert_eq!(json["written"], false);
    assert_eq!(json["services"][0]["instances"], "web:0");
    assert_eq!(json["files"][0]["path"], "tenement.toml");
    assert_eq!(json["files"][0]["status"], "new");
    assert!(
        json["files"][0]["text"]
            .as_str()
            .unwrap()
            .contains("[service.web]")
    );
    let release = json["report"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["key"] == "release")
        .unwrap();
    assert_eq!(release["kind"], "not_imported");
    assert_eq!(release["key"], "release");
    assert_eq!(release["line"], 2);
    assert!(!dir.path().join("tenement.toml").exists());
}

#[test]
fn files_it_cannot_read_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(
        &dir.path().join("ecosystem.config.js"),
        "module.exports = { apps: [{ name: 'api', script: 'server.js' }] }\n",
    );
    let output = ten(dir.path(), &["import", "ecosystem.config.js"]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(error.contains("only the JSON form is read"), "{error}");
    assert!(
        error.contains("JSON.stringify(require(\"./ecosystem.config.js\")"),
        "{error}"
    );

    support::write_file(&dir.path().join("notes.txt"), "just some words\n");
    let output = ten(dir.path(), &["import", "notes.txt"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--format supervisord | procfile"),
        "{}",
        stderr(&output)
    );

    support::write_file(&dir.path().join("broken.conf"), "[program:a]\njust words\n");
    let output = ten(dir.path(), &["import", "broken.conf", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(json["error"].as_str().unwrap().contains("line 2"), "{json}");
}

#[test]
fn an_imported_procfile_runs_under_ten_serve_and_answers_through_its_proxy() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(&dir.path().join("Procfile"), PROCFILE);
    let output = ten(dir.path(), &["import", "Procfile", "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // A private port range, as every test's project has (the default overlaps other tests').
    let config_path = dir.path().join("tenement.toml");
    let imported = std::fs::read_to_string(&config_path).unwrap();
    let (low, high) = port_range();
    support::write_file(
        &config_path,
        &format!(
            "[settings]\nport_range = [{low}, {high}]\nhealth_check_interval = 1\n\n{imported}"
        ),
    );
    let validate = ten(dir.path(), &["validate"]);
    assert!(validate.status.success(), "{}", stderr(&validate));

    let server = TestServer::start(dir.path());
    server.wait_running("web:0");
    let (status, body) = server.get("web.localhost", "/");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Procfile"),
        "a directory listing with the Procfile: {body}"
    );
    let (status, _) = server.get("0.web.localhost", "/tenement.toml");
    assert_eq!(status, 200);
}

/// A supervisord program set of background workers, with a group and its own log file.
const SUPERVISORD_WORKERS: &str = "[supervisord]\nlogfile=/tmp/supervisord.log\n\n\
[program:ticker]\ncommand=python3 -c \"import os, time, itertools; [print('tick', os.environ['SLOT'], flush=True) or time.sleep(0.05) for _ in itertools.count()]\"\n\
numprocs=2\nprocess_name=%(program_name)s_%(process_num)02d\nenvironment=SLOT=\"%(process_num)s\"\n\
stdout_logfile=logs/ticker-%(process_num)s.log\nstartsecs=1\nautorestart=true\n\n\
[group:background]\nprograms=ticker\n";

#[test]
fn an_imported_supervisord_program_set_of_workers_runs_under_ten_serve() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(&dir.path().join("supervisord.conf"), SUPERVISORD_WORKERS);
    let output = ten(dir.path(), &["import", "supervisord.conf", "--yes"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let config_path = dir.path().join("tenement.toml");
    let imported = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        imported.contains("listen = \"none\"") && imported.contains("count = 2"),
        "{imported}"
    );
    let (low, high) = port_range();
    support::write_file(
        &config_path,
        &format!(
            "[settings]\nport_range = [{low}, {high}]\nhealth_check_interval = 1\n\n{imported}"
        ),
    );
    let validate = ten(dir.path(), &["validate"]);
    assert!(
        validate.status.success(),
        "{}\n{imported}",
        stderr(&validate)
    );
    let server = TestServer::start(dir.path());
    let first = server.wait_running("ticker:0");
    let second = server.wait_running("ticker:1");
    assert_ne!(first, second);
    // Each one's lines reach its own log file, with its slot number.
    for slot in ["0", "1"] {
        let file = dir.path().join(format!("logs/ticker-{slot}.log"));
        let written = support::server::within(std::time::Duration::from_secs(10), || {
            std::fs::read_to_string(&file)
                .is_ok_and(|text| text.contains(&format!("tick {slot}\n")))
        });
        assert!(written, "{}: {}", file.display(), server.log());
    }
}
