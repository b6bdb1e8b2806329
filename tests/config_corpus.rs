//! The bad-input corpus: every fixture in testdata/invalid/ must be rejected, and its
//! rendered diagnostics (file:line:col, snippet, hint) must match the snapshot next to it.
//! Update snapshots after an intended change with `INSTA_UPDATE=always cargo test`.

mod support;

use std::path::Path;

use ten::config::has_errors;
use ten::desired::load;
use ten::render::{Style, render_diagnostics};

fn diagnostics_of(fixture_path: &Path) -> (String, ten::desired::Loaded) {
    let fixture = support::parse_fixture(&std::fs::read_to_string(fixture_path).unwrap());
    let dir = tempfile::tempdir().unwrap();
    fixture.write_under(dir.path(), "");
    let loaded = load(&dir.path().join("tenement.toml"));
    let rendered = render_diagnostics(&loaded.diagnostics, Path::new(""), Style::PLAIN);
    (format!("{}\n\n{rendered}", fixture.description), loaded)
}

#[test]
fn invalid_inputs_are_rejected_with_clear_messages() {
    let fixtures = support::fixtures("testdata/invalid");
    assert!(
        fixtures.len() >= 25,
        "the corpus has {} cases",
        fixtures.len()
    );
    insta::glob!("../testdata/invalid", "*.txt", |path| {
        let (output, loaded) = diagnostics_of(path);
        assert!(loaded.desired.is_none(), "{} was accepted", path.display());
        assert!(
            has_errors(&loaded.diagnostics),
            "{} has no error",
            path.display()
        );
        insta::assert_snapshot!(output);
    });
}

#[test]
fn all_problems_of_all_files_are_reported_together() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/invalid/many_problems.txt");
    let (_, loaded) = diagnostics_of(&path);
    let located: Vec<String> = loaded.diagnostics.iter().map(|d| d.location()).collect();
    assert_eq!(
        located,
        [
            "tenement.toml:2:23",
            "tenement.toml:3:1",
            "tenement.toml:6:1",
            "tenement.toml:7:13",
            "tenement.toml:10:24",
            "tenement.toml:13:19",
            "instances/api/x.toml",
            "instances/notes/bob.toml:1:10",
            "instances/notes/bob.toml:2:1",
        ]
    );
}
