//! Planner and renderer snapshots: each fixture in testdata/plan/ gives the desired state that
//! was last applied (`before/...`), adjustments of the observed state (`observed`), and the
//! desired state now (the other files). The plan is rendered as text, as a one-line-per-change
//! summary and as JSON, and compared with its snapshot.
//! Update snapshots after an intended change with `INSTA_UPDATE=always cargo test`.

mod support;

use std::path::Path;

use ten::desired::{DesiredState, FieldMap, load};
use ten::names::InstanceKey;
use ten::observed::{ExitInfo, ObservedInstance, ObservedState, Phase};
use ten::plan::{Action, Plan, Shown, plan, plan_showing, plan_token};
use ten::render::{Detail, Style, plan_json, render_plan};

/// Where fixtures are placed in the snapshots, whatever the temporary directory.
const SHOWN_ROOT: &str = "/srv/app";

fn load_valid(root: &Path) -> DesiredState {
    let loaded = load(&root.join("tenement.toml"));
    let messages: Vec<&str> = loaded
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    loaded
        .desired
        .unwrap_or_else(|| panic!("fixture desired state is invalid: {messages:?}"))
}

/// Applies `observed` lines: `KEY phase=P heading_for=P exit_code=N signal=N restarts=N
/// note=rest of line`.
fn adjust(observed: &mut ObservedState, lines: &str) {
    for line in lines.lines().filter(|line| !line.trim().is_empty()) {
        let (key, attributes) = line.split_once(' ').unwrap_or((line, ""));
        let key = InstanceKey::parse(key).unwrap();
        let instance = observed
            .instances
            .entry(key)
            .or_insert_with(|| ObservedInstance::new(Phase::Running, FieldMap::new()));
        let (attributes, note) = match attributes.split_once("note=") {
            Some((head, note)) => (head, Some(note.to_string())),
            None => (attributes, None),
        };
        instance.note = note;
        for attribute in attributes.split_whitespace() {
            let (name, value) = attribute.split_once('=').unwrap();
            match name {
                "phase" => instance.phase = serde_json::from_str(&format!("\"{value}\"")).unwrap(),
                "restarts" => instance.restarts = value.parse().unwrap(),
                "heading_for" => {
                    instance.heading_for =
                        Some(serde_json::from_str(&format!("\"{value}\"")).unwrap());
                }
                "exit_code" | "signal" => {
                    let exit = instance.last_exit.get_or_insert(Box::new(ExitInfo {
                        code: None,
                        signal: None,
                        at_unix: 0,
                    }));
                    let number = Some(value.parse().unwrap());
                    if name == "signal" {
                        exit.signal = number;
                    } else {
                        exit.code = number;
                    }
                }
                other => panic!("unknown observed attribute {other}"),
            }
        }
        if !matches!(
            instance.phase,
            Phase::Running | Phase::Starting | Phase::Stopping
        ) {
            instance.pid = None;
        }
    }
}

fn plan_fixture(text: &str) -> (String, Plan) {
    let fixture = support::parse_fixture(text);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    let mut observed = ObservedState::default();
    if fixture
        .files
        .iter()
        .any(|(path, _)| path.starts_with("before/"))
    {
        fixture.write_under(&root, "before/");
        observed = support::observed_as_applied(&load_valid(&root));
        std::fs::remove_dir_all(&root).unwrap();
    }
    if let Some(lines) = fixture.file("observed") {
        adjust(&mut observed, lines);
    }
    for (path, content) in &fixture.files {
        if !path.starts_with("before/") && path != "observed" {
            support::write_file(&root.join(path), content);
        }
    }
    let desired = load_valid(&root);
    let mut plan = plan(&desired, &observed);
    // What the server's passes act on: the same plan, less the fields of its creates and
    // the token, which is the same when asked for.
    let bare = plan_showing(&desired, &observed, Shown::Bare);
    let mut expected = plan.clone();
    for change in &mut expected.changes {
        if change.action == Action::Create {
            change.fields.clear();
        }
    }
    expected.token = String::new();
    assert_eq!(bare, expected, "{}", fixture.description);
    assert_eq!(plan_token(&desired, &observed), plan.token);
    // The token hashes absolute paths, which differ per run; tested on its own below.
    plan.token = "<token>".to_string();
    let full = render_plan(&plan, Detail::Full, Style::PLAIN);
    let summary = render_plan(&plan, Detail::Summary, Style::PLAIN);
    let json = plan_json(&plan, &[]);
    let output = format!(
        "{}\n\n=== text ===\n{full}\n=== summary ===\n{summary}\n=== json ===\n{json}",
        fixture.description
    );
    let shown_root = root.to_string_lossy().into_owned();
    (output.replace(&shown_root, SHOWN_ROOT), plan)
}

#[test]
fn plans_render_as_expected() {
    let fixtures = support::fixtures("testdata/plan");
    assert!(
        fixtures.len() >= 15,
        "only {} plan fixtures",
        fixtures.len()
    );
    insta::glob!("../testdata/plan", "*.txt", |path| {
        let (output, plan) = plan_fixture(&std::fs::read_to_string(path).unwrap());
        // The JSON is the wire form of the plan: it must read back to the same plan.
        let json = plan_json(&plan, &[]);
        let read_back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(read_back, plan);
        insta::assert_snapshot!(output);
    });
}

#[test]
fn secrets_never_reach_the_output() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/plan/masked_secrets.txt");
    let (output, _) = plan_fixture(&std::fs::read_to_string(path).unwrap());
    for secret in ["tok-old", "tok-new", "hunter2", "sk_old", "AKIA", "abc"] {
        assert!(
            !output.contains(&format!("\"{secret}\"")),
            "{secret} leaked:\n{output}"
        );
    }
    assert!(output.contains("(sensitive)"));
}

#[test]
fn the_token_changes_with_desired_state_and_generation_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    support::write_file(
        &root.join("tenement.toml"),
        "[service.notes]\ncommand = \"x\"\n",
    );
    support::write_file(&root.join("instances/notes/alice.toml"), "");
    let desired = load_valid(root);
    let observed = ObservedState::default();
    let first = plan(&desired, &observed);
    assert_eq!(first.token.len(), 16);
    assert_eq!(
        plan(&desired, &observed).token,
        first.token,
        "deterministic"
    );

    let later = ObservedState {
        generation: 1,
        ..ObservedState::default()
    };
    assert_ne!(
        plan(&desired, &later).token,
        first.token,
        "observed generation is part of it"
    );

    support::write_file(&root.join("instances/notes/alice.toml"), "weight = 5\n");
    assert_ne!(
        plan(&load_valid(root), &observed).token,
        first.token,
        "desired state is part of it"
    );
}
