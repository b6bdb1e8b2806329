//! The example alert rules (`examples/prometheus/alerts.yml`) and Grafana dashboard
//! (`examples/grafana/ten.json`) name only metrics ten exports: every `ten_*` and `process_*`
//! name in their expressions is a family of a full scrape (every gauge present), or a series of
//! a histogram family (`_bucket`, `_sum`, `_count`). `promtool check rules` checks the rules'
//! syntax (`tests/metrics.rs`).

use std::collections::BTreeSet;
use std::path::Path;

use super::global::Metrics;
use super::service::Services;
use super::{CertificateGauges, Gauges, ProcessFacts, ServiceGauges};

/// The families of a scrape with every optional part present, and their kinds.
fn families() -> Vec<(String, String)> {
    let services = Services::default();
    services.declare(["web"]);
    let gauges = Gauges {
        instances: vec![ServiceGauges {
            service: "web".into(),
            phases: vec![("running", 1)],
            restarts: 0,
        }],
        config_errors: 0,
        generation: 1,
        certificates: Some(CertificateGauges {
            states: vec![("valid", 1)],
            earliest_expiry_unix: Some(1),
        }),
        process: ProcessFacts {
            resident_bytes: Some(1),
            cpu_seconds: Some(1.0),
            open_fds: Some(1),
            max_fds: Some(2),
        },
    };
    Metrics::new()
        .render(&services, &gauges)
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|declared| {
            let (name, kind) = declared.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect()
}

/// Whether `name` is a series ten exports.
fn exported(name: &str, families: &[(String, String)]) -> bool {
    families.iter().any(|(family, kind)| {
        name == family
            || (kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| name.strip_suffix(suffix) == Some(family)))
    })
}

/// The metric names an expression uses (of ten's and of its process).
fn names(expression: &str) -> Vec<&str> {
    expression
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|token| token.starts_with("ten_") || token.starts_with("process_"))
        .collect()
}

fn example(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every `expr` of a rule file: on its line, or the block below it (`|`, `>-`).
fn rule_expressions(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut expressions = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(value) = line
            .trim_start()
            .trim_start_matches("- ")
            .strip_prefix("expr:")
        else {
            continue;
        };
        let value = value.trim();
        if !value.starts_with(['|', '>']) {
            expressions.push(value.to_string());
            continue;
        }
        // The block is indented more than the key.
        let indent = line.find("expr:").unwrap_or(0);
        let block: Vec<&str> = lines[index + 1..]
            .iter()
            .take_while(|next| {
                next.trim().is_empty() || next.len() - next.trim_start().len() > indent
            })
            .copied()
            .collect();
        expressions.push(block.join("\n"));
    }
    expressions
}

/// Every query of a dashboard: the panels' `expr`, the variables' `query` and `definition`.
fn dashboard_expressions(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", serde_json::Value::String(text)) => {
                        found.push(text.clone());
                    }
                    ("query", serde_json::Value::String(text)) if text.contains('(') => {
                        found.push(text.clone());
                    }
                    _ => dashboard_expressions(value, found),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                dashboard_expressions(item, found);
            }
        }
        _ => {}
    }
}

fn check(what: &str, expressions: &[String], families: &[(String, String)]) -> BTreeSet<String> {
    assert!(!expressions.is_empty(), "{what} has no expression");
    let mut used = BTreeSet::new();
    for expression in expressions {
        let named = names(expression);
        assert!(
            !named.is_empty(),
            "{what}: `{expression}` names no metric of ten"
        );
        for name in named {
            assert!(
                exported(name, families),
                "{what}: `{name}` (in `{expression}`) is not a metric ten exports"
            );
            used.insert(name.to_string());
        }
    }
    used
}

#[test]
fn the_example_rules_and_dashboard_name_only_metrics_ten_exports() {
    let families = families();
    let rules = rule_expressions(&example("examples/prometheus/alerts.yml"));
    assert!(rules.len() >= 10, "{rules:#?}");
    let in_rules = check("alerts.yml", &rules, &families);

    let dashboard: serde_json::Value =
        serde_json::from_str(&example("examples/grafana/ten.json")).expect("ten.json parses");
    let mut queries = Vec::new();
    dashboard_expressions(&dashboard, &mut queries);
    let in_dashboard = check("ten.json", &queries, &families);

    // What an operator alerts on is in the rules.
    for needed in [
        "ten_instances",
        "ten_failures_total",
        "ten_restarts_total",
        "ten_service_requests_total",
        "ten_wake_duration_seconds_bucket",
        "ten_certificate_earliest_expiry_timestamp_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
        "ten_reconcile_pending_seconds",
        "ten_config_errors",
    ] {
        assert!(in_rules.contains(needed), "no rule uses {needed}");
    }
    // The dashboard shows every family but the build info.
    for (family, kind) in &families {
        let shown = in_dashboard.iter().any(|name| {
            name == family || (kind == "histogram" && name.starts_with(family.as_str()))
        });
        assert!(
            shown || family == "ten_config_generation",
            "the dashboard does not show {family}"
        );
    }
}

#[test]
fn names_are_found_in_expressions_and_checked() {
    let families = families();
    assert_eq!(
        names("sum by (le) (rate(ten_wake_duration_seconds_bucket{service=\"(unrouted)\"}[5m]))"),
        ["ten_wake_duration_seconds_bucket"]
    );
    assert!(exported("ten_wake_duration_seconds_bucket", &families));
    assert!(exported("ten_service_requests_total", &families));
    assert!(!exported("ten_service_requests_total_bucket", &families));
    assert!(!exported("ten_no_such_metric", &families));
    assert_eq!(
        rule_expressions("  - expr: a > 1\n  - expr: |\n      b\n      / c\n    for: 5m\n"),
        ["a > 1", "      b\n      / c"]
    );
}
