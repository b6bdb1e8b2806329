//! The module boundaries `docs/ARCHITECTURE.md` states, checked on the source: every module
//! of `src/` uses only modules below it in one order (so no module cycle can form), the pure
//! and file-reading modules use no async runtime, OS or HTTP crate, and nothing uses the CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The modules of the crate, lowest first: each may use those before it, none after it.
const LAYERS: &[&str] = &[
    "names",
    "files",
    "metrics",
    "body",
    "config",
    "desired",
    "observed",
    "plan",
    "render",
    "import",
    "export",
    "watch",
    "runtime",
    "events",
    "supervisor",
    "reconcile",
    "proxy",
    "tls",
    "api",
    "dashboard",
    "server",
    "cli",
];

/// Modules that must not use these crates: what they do is pure, or plain file reading.
const NO_RUNTIME: &[(&str, &[&str])] = &[
    ("names", &["tokio", "nix", "hyper", "notify"]),
    ("config", &["tokio", "nix", "hyper", "notify"]),
    ("desired", &["tokio", "nix", "hyper", "notify"]),
    ("observed", &["tokio", "nix", "hyper", "notify"]),
    ("plan", &["tokio", "nix", "hyper", "notify"]),
    ("render", &["tokio", "nix", "hyper", "notify"]),
    ("import", &["tokio", "nix", "hyper", "notify"]),
    ("export", &["tokio", "nix", "hyper", "notify"]),
    ("metrics", &["tokio", "nix", "hyper"]),
    ("files", &["tokio", "nix", "hyper", "notify"]),
];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`lib` and `main` are the crate roots).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap();
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The code of `text` without comments (line comments and doc comments), line by line.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        (!code.trim().is_empty()).then_some((index + 1, code))
    })
}

/// The names `text` uses after `prefix` (`crate::config::...` gives `config`).
fn used_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .filter(|(at, _)| {
            // `crate::` and `tokio::` as whole words, not the end of another name.
            *at == 0
                || !code[..*at]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, _)| {
            let rest = &code[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// What the source breaks of the boundaries, one line per breach.
fn breaches(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(src, &mut files);
    files.sort();
    let rank: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .map(|(index, name)| (*name, index))
        .collect();
    let mut found = Vec::new();
    for file in &files {
        let module = module_of(src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(&own) = rank.get(module.as_str()) else {
            found.push(format!(
                "{}: module `{module}` has no place in the layers of tests/boundaries.rs",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let forbidden_crates = NO_RUNTIME
            .iter()
            .find(|(name, _)| *name == module)
            .map_or(&[][..], |(_, crates)| *crates);
        for (line, code) in code_lines(&text) {
            for used in used_after(code, "crate::") {
                let Some(&other) = rank.get(used) else {
                    continue;
                };
                if other > own {
                    found.push(format!(
                        "{}:{line}: `{module}` uses `{used}`, which is above it",
                        file.display()
                    ));
                }
            }
            for external in forbidden_crates {
                let uses = !used_after(code, &format!("{external}::")).is_empty()
                    || code.trim_start().starts_with(&format!("use {external}"));
                if uses {
                    found.push(format!(
                        "{}:{line}: `{module}` uses the crate `{external}`",
                        file.display()
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_what_is_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = breaches(&src);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn a_forbidden_use_is_found() {
    // The check itself: a copy of `src/` with one breach of each kind.
    let copy = tempfile::tempdir().unwrap();
    let src = copy.path().join("src");
    for (path, text) in [
        ("config/mod.rs", "use crate::cli::Cli;\n"),
        (
            "plan/mod.rs",
            "// crate::server is above, but this is a comment\nfn f() { tokio::spawn(async {}); }\n",
        ),
        ("names.rs", "use crate::config::Config;\n"),
        ("api/mod.rs", "use crate::reconcile::Message;\n"),
        ("gadget.rs", "\n"),
    ] {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let found = breaches(&src);
    let found: Vec<&str> = found
        .iter()
        .map(|line| {
            line.rsplit_once(": ")
                .map_or(line.as_str(), |(_, what)| what)
        })
        .collect();
    assert_eq!(
        found,
        [
            "`config` uses `cli`, which is above it",
            "module `gadget` has no place in the layers of tests/boundaries.rs",
            "`names` uses `config`, which is above it",
            "`plan` uses the crate `tokio`",
        ]
    );
}
