//! `ten init` through the real binary: sample projects of each kind in testdata/init/ (what it
//! says on stderr and the files it writes, as snapshots), every config it writes accepted by
//! `ten validate`, guessed projects that really run under `ten serve`, and nothing ever
//! overwritten. Update snapshots after an intended change with `INSTA_UPDATE=always cargo test`.

mod support;

use std::path::{Path, PathBuf};

use support::server::{TestServer, backend, stderr, stdout, ten_in};

/// The fixture's project written to `{tempdir}/shop` (so the service is named `shop`).
fn sample(fixture_path: &Path) -> (tempfile::TempDir, PathBuf, String) {
    let fixture = support::parse_fixture(&std::fs::read_to_string(fixture_path).unwrap());
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    fixture.write_under(&dir, "");
    (root, dir, fixture.description)
}

/// The files under `dir/instances`, relative to `dir`, sorted.
fn instance_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for service in std::fs::read_dir(dir.join("instances")).unwrap().flatten() {
        for file in std::fs::read_dir(service.path()).unwrap().flatten() {
            found.push(file.path().strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    found.sort();
    found
}

#[test]
fn sample_projects_get_a_config_that_validates() {
    let fixtures = support::fixtures("testdata/init");
    assert!(fixtures.len() >= 10, "{} samples", fixtures.len());
    insta::glob!("../testdata/init", "*.txt", |path| {
        let (_root, dir, description) = sample(path);
        let output = ten_in(&dir, &["init"], &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        let mut shown = format!("{description}\n\n$ ten init\n{}\n", stderr(&output));
        for file in std::iter::once(PathBuf::from("tenement.toml")).chain(instance_files(&dir)) {
            let text = std::fs::read_to_string(dir.join(&file)).unwrap();
            shown.push_str(&format!("-- {} --\n{text}", file.display()));
        }
        insta::assert_snapshot!(shown);

        let output = ten_in(&dir, &["validate", "--json"], &[]);
        let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let config = std::fs::read_to_string(dir.join("tenement.toml")).unwrap();
        assert_eq!(
            result["valid"],
            true,
            "{}: {result:#}\n{config}",
            path.display()
        );
        assert!(result["instances"].as_u64().unwrap() >= 1, "{result:#}");
    });
}

#[test]
fn json_prints_what_was_written() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("notes");
    support::write_file(&dir.join("go.mod"), "module notes\n");
    let output = ten_in(root.path(), &["init", "notes", "--json"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let written: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(written["kind"], "go");
    assert_eq!(written["services"][0]["name"], "notes");
    assert_eq!(written["services"][0]["command"], "go run .");
    let files = written["files"].as_array().unwrap();
    let paths: Vec<&str> = files
        .iter()
        .map(|file| file["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["tenement.toml", "instances/notes/alice.toml"]);
    for file in files {
        let on_disk = std::fs::read_to_string(dir.join(file["path"].as_str().unwrap())).unwrap();
        assert_eq!(file["text"].as_str().unwrap(), on_disk);
    }
    // What it guessed and why is on stderr, with --json too.
    assert!(stderr(&output).contains("go.mod"), "{}", stderr(&output));
}

#[test]
fn nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    support::write_file(&dir.path().join("tenement.toml"), "# mine\n");
    let output = ten_in(dir.path(), &["init"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let said = stderr(&output);
    assert!(
        said.contains("tenement.toml exists already; nothing was changed")
            && said.contains("hint:")
            && said.contains("move it away"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("tenement.toml")).unwrap(),
        "# mine\n"
    );
    assert!(!dir.path().join("instances").exists());

    // An instance file of the same name is kept, and said so.
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("instances/shop/alice.toml");
    support::write_file(&mine, "state = \"stopped\"\n");
    let output = ten_in(dir.path(), &["init", "--name", "shop"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("exists already: kept"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(&mine).unwrap(),
        "state = \"stopped\"\n"
    );
    assert!(
        !stdout(&output).contains("alice.toml"),
        "{}",
        stdout(&output)
    );

    // A name that is no DNS label is refused with a suggestion.
    let output = ten_in(dir.path(), &["init", "other", "--name", "My_App"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--name my-app"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("other/tenement.toml").exists());
}

#[test]
fn a_procfile_web_process_runs_under_serve() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("shop");
    support::write_file(
        &dir.join("Procfile"),
        &format!("web: {} --quiet\n", backend().display()),
    );
    let output = ten_in(&dir, &["init"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let server = TestServer::start(&dir);
    server.wait_running("web:main");
    assert_eq!(
        server.get("main.web.localhost", "/health"),
        (200, "ok\n".into())
    );
    assert_eq!(server.get("web.localhost", "/health"), (200, "ok\n".into()));
}

#[test]
fn the_example_runs_under_serve() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    let output = ten_in(&dir, &["init"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let server = TestServer::start(&dir);
    // It sleeps when idle, so it starts on demand: declared asleep, woken by the request.
    server.wait_until("shop:alice is declared asleep", |views| {
        views.iter().any(|v| {
            v.instance.to_string() == "shop:alice" && v.phase == ten::observed::Phase::Sleeping
        })
    });
    // Python's web server lists the tenant's (empty) data directory.
    let (status, body) = server.get("alice.shop.localhost", "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Directory listing"), "{body}");
}
