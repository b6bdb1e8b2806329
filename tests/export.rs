//! `ten export kubernetes|nomad` end to end: the real binary exports the bundled example
//! (examples/notes) and a config that uses every mapped key (testdata/export/every_key).
//! The output is compared with snapshots (update them after an intended change with
//! `INSTA_UPDATE=always cargo test --test export`); every Kubernetes document is read back
//! into the k8s-openapi type of its kind (Knative ones into ten's strict structs) and must
//! serialize to the same value; Debian's `kubectl` (which `.ci/run` installs) builds the
//! kustomization written with the files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use ten::export::nomad::JobFile;
use ten::export::{DomainMapping, KnativeService, yaml};

/// Where the fixtures are placed in the snapshots, whatever the checkout's path.
const SHOWN_ROOT: &str = "/srv/app";

const SECRETS: [&str; 2] = ["s3cr3t-api-key-value", "hunter2-db-password"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example() -> PathBuf {
    root().join("examples/notes")
}

fn every_key() -> PathBuf {
    root().join("testdata/export/every_key")
}

fn ten(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ten"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("TENEMENT_CONFIG")
        .env_remove("TENEMENT_DATA_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("run ten")
}

/// Runs an export that must succeed; its stdout and stderr with the fixture's directory
/// shown as SHOWN_ROOT.
fn export(config: &Path, args: &[&str]) -> (String, String) {
    let output = ten(config, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "ten {args:?} failed: {stderr}\n{stdout}"
    );
    let shown = config.to_string_lossy().into_owned();
    (
        stdout.replace(&shown, SHOWN_ROOT),
        stderr.replace(&shown, SHOWN_ROOT),
    )
}

fn snapshot(name: &str, config: &Path, args: &[&str]) {
    let (stdout, stderr) = export(config, args);
    let text = format!(
        "$ ten {}\n--- stderr\n{stderr}--- stdout\n{stdout}",
        args.join(" ")
    );
    insta::assert_snapshot!(name, text);
}

#[test]
fn snapshots_of_the_bundled_example() {
    snapshot("notes_kubernetes", &example(), &["export", "kubernetes"]);
    snapshot(
        "notes_kubernetes_knative",
        &example(),
        &[
            "export",
            "kubernetes",
            "--knative",
            "--domain",
            "example.com",
        ],
    );
    snapshot("notes_nomad", &example(), &["export", "nomad"]);
}

#[test]
fn snapshots_of_every_mapped_key() {
    snapshot(
        "every_key_kubernetes",
        &every_key(),
        &[
            "export",
            "kubernetes",
            "--namespace",
            "tenants",
            "--image",
            "registry.example/app:1.2",
            "--image",
            "worker=registry.example/worker:3",
            "--storage-class",
            "fast",
            "--ingress-class",
            "nginx",
        ],
    );
    snapshot(
        "every_key_kubernetes_knative",
        &every_key(),
        &["export", "kubernetes", "--knative"],
    );
    snapshot(
        "every_key_nomad_hcl",
        &every_key(),
        &[
            "export",
            "nomad",
            "--datacenter",
            "eu1",
            "--datacenter",
            "eu2",
        ],
    );
    snapshot(
        "every_key_nomad_json",
        &every_key(),
        &["export", "nomad", "--format", "json", "--driver", "exec"],
    );
}

/// `value` read into `T` and written back is the same value: no field was unknown to the
/// type or dropped.
fn same_after_round_trip<T: DeserializeOwned + Serialize>(value: &Value) {
    let typed: T =
        serde_json::from_value(value.clone()).unwrap_or_else(|error| panic!("{error}: {value:#}"));
    assert_eq!(&serde_json::to_value(&typed).unwrap(), value);
}

fn round_trip(value: &Value) {
    let api = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    match (api, kind) {
        ("apps/v1", "StatefulSet") => same_after_round_trip::<StatefulSet>(value),
        ("v1", "Service") => same_after_round_trip::<Service>(value),
        ("v1", "Secret") => same_after_round_trip::<Secret>(value),
        ("v1", "PersistentVolumeClaim") => same_after_round_trip::<PersistentVolumeClaim>(value),
        ("networking.k8s.io/v1", "Ingress") => same_after_round_trip::<Ingress>(value),
        ("serving.knative.dev/v1", "Service") => same_after_round_trip::<KnativeService>(value),
        ("serving.knative.dev/v1beta1", "DomainMapping") => {
            same_after_round_trip::<DomainMapping>(value);
        }
        other => panic!("an exported document of no known kind: {other:?}"),
    }
}

#[test]
fn every_kubernetes_document_round_trips_through_its_api_type() {
    let mut kinds = std::collections::BTreeSet::new();
    for config in [example(), every_key()] {
        for knative in [false, true] {
            let mut args = vec!["export", "kubernetes"];
            if knative {
                args.push("--knative");
            }
            let (stdout, _) = export(&config, &args);
            let documents = yaml::documents(&stdout).unwrap();
            assert!(!documents.is_empty());
            for document in &documents {
                round_trip(document);
                kinds.insert(format!("{} {}", document["apiVersion"], document["kind"]));
            }
        }
    }
    // Every kind the export makes was read back.
    assert_eq!(kinds.len(), 7, "{kinds:?}");
}

#[test]
fn nomad_json_jobs_read_back_into_the_strict_jobspec_structs() {
    let (stdout, _) = export(
        &every_key(),
        &["export", "nomad", "--format", "json", "--json"],
    );
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    let documents = answer["documents"].as_array().unwrap();
    assert_eq!(documents.len(), 3);
    for document in documents {
        let value = &document["value"];
        let job: JobFile = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(&serde_json::to_value(&job).unwrap(), value);
    }
}

#[test]
fn kubectl_kustomize_accepts_the_exported_files() {
    for (config, knative) in [
        (example(), false),
        (every_key(), false),
        (every_key(), true),
    ] {
        let out = tempfile::tempdir().unwrap();
        let mut args = vec!["export", "kubernetes", "--out"];
        let dir = out.path().to_string_lossy().into_owned();
        args.push(&dir);
        if knative {
            args.push("--knative");
        }
        let (stdout, stderr) = export(&config, &args);
        assert_eq!(stdout, "", "with --out, nothing on stdout");
        assert!(stderr.contains("kubectl kustomize"), "{stderr}");
        let mut files: Vec<String> = std::fs::read_dir(out.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "kustomization.yaml")
            .collect();
        files.sort();
        let kustomization = std::fs::read_to_string(out.path().join("kustomization.yaml")).unwrap();
        for file in &files {
            assert!(
                kustomization.contains(&format!("  - {file}\n")),
                "{file} is not listed:\n{kustomization}"
            );
        }
        let output = Command::new("kubectl")
            .arg("kustomize")
            .arg(out.path())
            .output()
            .unwrap_or_else(|error| {
                panic!("cannot run kubectl ({error}): install it with `apt-get install kubectl` (.ci/run does)")
            });
        assert!(
            output.status.success(),
            "kubectl kustomize refused the export: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let built = yaml::documents(&String::from_utf8_lossy(&output.stdout)).unwrap();
        assert_eq!(built.len(), files.len(), "one object per file");
    }
}

#[test]
fn knative_services_of_idle_instances_scale_to_zero_after_the_idle_timeout() {
    let (stdout, _) = export(&example(), &["export", "kubernetes", "--knative"]);
    let documents = yaml::documents(&stdout).unwrap();
    let services: Vec<&Value> = documents
        .iter()
        .filter(|d| d["apiVersion"] == "serving.knative.dev/v1")
        .collect();
    // Both notes instances sleep (idle_timeout = 300).
    assert_eq!(services.len(), 2);
    for service in services {
        let annotations = &service["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["autoscaling.knative.dev/min-scale"], "0");
        assert_eq!(annotations["autoscaling.knative.dev/max-scale"], "1");
        assert_eq!(
            annotations["autoscaling.knative.dev/scale-down-delay"],
            "300s"
        );
        // request_timeout (30 s by default) is the revision's timeout.
        assert_eq!(service["spec"]["template"]["spec"]["timeoutSeconds"], 30);
        // On demand (the default with an idle_timeout): no pod until the first request.
        assert_eq!(annotations["autoscaling.knative.dev/initial-scale"], "0");
    }
    let hosts: Vec<&str> = documents
        .iter()
        .filter(|d| d["kind"] == "DomainMapping")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["alice.notes.localhost", "bob.notes.localhost"]);
    let (_, stderr) = export(&example(), &["export", "kubernetes", "--knative"]);
    assert!(
        stderr.contains("allow-zero-initial-scale"),
        "the cluster setting initial-scale 0 needs is not named: {stderr}"
    );
    // An eager instance that sleeps when idle starts with its pod, as ten starts it.
    let eager = tempfile::tempdir().unwrap();
    std::fs::write(
        eager.path().join("tenement.toml"),
        "[service.web]\ncommand = \"app --port {port}\"\nidle_timeout = 60\nstart = \"eager\"\n\n[instances]\nweb = [\"a\"]\n",
    )
    .unwrap();
    let (stdout, stderr) = export(eager.path(), &["export", "kubernetes", "--knative"]);
    let documents = yaml::documents(&stdout).unwrap();
    let service = documents
        .iter()
        .find(|d| d["apiVersion"] == "serving.knative.dev/v1")
        .expect("a Knative Service");
    let annotations = &service["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["autoscaling.knative.dev/min-scale"], "0");
    assert!(
        annotations
            .get("autoscaling.knative.dev/initial-scale")
            .is_none(),
        "{annotations:?}"
    );
    assert!(!stderr.contains("allow-zero-initial-scale"), "{stderr}");
    // Without --knative, they are StatefulSets, and the warning says what is lost.
    let (stdout, stderr) = export(&example(), &["export", "kubernetes"]);
    assert!(!stdout.contains("knative"), "{stdout}");
    assert!(
        stderr.contains("pass --knative for scale to zero"),
        "{stderr}"
    );
}

#[test]
fn a_secret_env_value_appears_in_no_document_but_the_secret() {
    for knative in [false, true] {
        let mut args = vec!["export", "kubernetes"];
        if knative {
            args.push("--knative");
        }
        let (stdout, stderr) = export(&every_key(), &args);
        assert!(!stderr.contains(SECRETS[0]));
        let documents = yaml::documents(&stdout).unwrap();
        let mut in_secrets = 0;
        for document in &documents {
            let text = document.to_string();
            let holds = SECRETS.iter().any(|secret| text.contains(secret));
            if document["kind"] == "Secret" {
                in_secrets += usize::from(holds);
            } else {
                assert!(!holds, "a secret outside a Secret: {document:#}");
            }
        }
        // web:a, web:b, web:c each have API_KEY (and web:a DB_PASSWORD).
        assert_eq!(in_secrets, 3);
        assert!(stdout.contains("secretKeyRef"));
    }
    for args in [
        &["export", "nomad"][..],
        &["export", "nomad", "--format", "json"],
        &["export", "nomad", "--json"],
    ] {
        let (stdout, stderr) = export(&every_key(), args);
        for secret in SECRETS {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{args:?}"
            );
        }
        assert!(stdout.contains("nomadVar"), "{args:?}");
    }
}

#[test]
fn json_lists_documents_files_and_warnings() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_string_lossy().into_owned();
    let (stdout, stderr) = export(&example(), &["export", "nomad", "--json", "--out", &dir]);
    assert_eq!(stderr, "", "with --json, warnings are in the JSON");
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["target"], "nomad");
    assert_eq!(answer["written"], serde_json::json!(["notes.nomad.hcl"]));
    assert!(out.path().join("notes.nomad.hcl").is_file());
    let warnings = answer["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w["key"] == "domain" && w["subject"] == "export"),
        "{warnings:?}"
    );
}

#[test]
fn options_that_cannot_be_honoured_are_errors_that_say_what_to_do() {
    for (args, expected) in [
        (
            &["export", "kubernetes", "--namespace", "Bad_NS"][..],
            "--namespace \"Bad_NS\"",
        ),
        (
            &["export", "kubernetes", "--image", "nosuch=img:1"],
            "--image \"nosuch=img:1\" names no declared service",
        ),
        (
            &["export", "nomad", "--domain", "bad_domain.com"],
            "--domain \"bad_domain.com\" has a label \"bad_domain\"",
        ),
    ] {
        let output = ten(&example(), args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            stderr.contains("hint: give") || stderr.contains("hint: a namespace"),
            "{stderr}"
        );
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn the_export_is_the_same_every_time() {
    let first = export(&every_key(), &["export", "kubernetes", "--knative"]);
    let second = export(&every_key(), &["export", "kubernetes", "--knative"]);
    assert_eq!(first, second);
}

/// A block given once is an object in hcl-rs's value, given more than once an array.
fn blocks(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The HCL of each job, parsed and evaluated by another implementation of HCL (hcl-rs, with
/// `NOMAD_PORT_http` standing for itself), says what the JSON of the API says: every string
/// escaped right, every group, task, service and check there.
#[test]
fn the_hcl_jobs_say_what_the_json_jobs_say() {
    let mut context = hcl::eval::Context::new();
    context.declare_var("NOMAD_PORT_http", "${NOMAD_PORT_http}");
    for config in [example(), every_key()] {
        for driver in ["raw-exec", "exec"] {
            let hcl_dir = tempfile::tempdir().unwrap();
            let json_dir = tempfile::tempdir().unwrap();
            for (dir, format) in [(&hcl_dir, "hcl"), (&json_dir, "json")] {
                let out = dir.path().to_string_lossy().into_owned();
                let args = [
                    "export", "nomad", "--driver", driver, "--format", format, "--out", &out,
                ];
                export(&config, &args);
            }
            let mut jobs = 0;
            for entry in std::fs::read_dir(json_dir.path()).unwrap() {
                let path = entry.unwrap().path();
                let json: JobFile =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let job = &json.job;
                let hcl_path = hcl_dir.path().join(format!("{}.nomad.hcl", job.id));
                let text = std::fs::read_to_string(&hcl_path).unwrap();
                let value: hcl::Value =
                    hcl::eval::from_str(&text, &context).unwrap_or_else(|error| {
                        panic!("{} is not HCL: {error}\n{text}", hcl_path.display())
                    });
                let hcl_job = &serde_json::to_value(&value).unwrap()["job"][&job.id];
                assert_eq!(hcl_job["type"], "service");
                assert_eq!(hcl_job["datacenters"], serde_json::json!(job.datacenters));
                let groups = hcl_job["group"].as_object().unwrap();
                assert_eq!(groups.len(), job.task_groups.len());
                for group in &job.task_groups {
                    let hcl_group = &groups[&group.name];
                    assert_eq!(hcl_group["count"], group.count);
                    let task = &group.tasks[0];
                    let hcl_task = &hcl_group["task"][&task.name];
                    assert_eq!(hcl_task["driver"], task.driver.as_str());
                    assert_eq!(hcl_task["kill_signal"], task.kill_signal.as_str());
                    let timeout =
                        humantime::parse_duration(hcl_task["kill_timeout"].as_str().unwrap())
                            .unwrap();
                    assert_eq!(timeout.as_nanos(), u128::from(task.kill_timeout));
                    assert_eq!(
                        hcl_task["config"],
                        serde_json::to_value(&task.config).unwrap()
                    );
                    assert_eq!(hcl_task["env"], serde_json::json!(task.env));
                    let templates = blocks(&hcl_task["template"]);
                    assert_eq!(templates.len(), task.templates.len());
                    for (hcl_template, template) in templates.iter().zip(&task.templates) {
                        assert_eq!(hcl_template["data"], template.embedded_tmpl.as_str());
                    }
                    let services = blocks(&hcl_group["service"]);
                    assert_eq!(services.len(), group.services.len());
                    for (hcl_service, service) in services.iter().zip(&group.services) {
                        assert_eq!(hcl_service["name"], service.name.as_str());
                        assert_eq!(hcl_service["tags"], serde_json::json!(service.tags));
                        let checks = blocks(&hcl_service["check"]);
                        assert_eq!(checks.len(), service.checks.len());
                        for (hcl_check, check) in checks.iter().zip(&service.checks) {
                            assert_eq!(hcl_check["type"], check.kind.as_str());
                        }
                    }
                    assert_eq!(
                        blocks(&hcl_task["volume_mount"]).len(),
                        task.volume_mounts.len()
                    );
                }
                jobs += 1;
            }
            assert!(jobs > 0);
        }
    }
}

/// Copies the files of `from` into `to` (a fixture, to change it).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn an_export_again_removes_the_files_of_instances_removed_since_and_no_other() {
    let project = tempfile::tempdir().unwrap();
    copy_dir(&every_key(), project.path());
    let out = project.path().join("k8s");
    let dir = out.to_string_lossy().into_owned();
    let args = ["export", "kubernetes", "--out", &dir];
    export(project.path(), &args);
    assert!(out.join("statefulset-web-b.yaml").is_file());
    std::fs::write(out.join("mine.yaml"), "kind: Mine\n").unwrap();
    std::fs::remove_file(project.path().join("instances/web/b.toml")).unwrap();
    export(project.path(), &args);
    for gone in [
        "statefulset-web-b.yaml",
        "service-web-b.yaml",
        "secret-web-b-env.yaml",
    ] {
        assert!(!out.join(gone).exists(), "{gone} is left");
    }
    assert!(out.join("statefulset-web-a.yaml").is_file());
    assert!(
        out.join("mine.yaml").is_file(),
        "a file ten did not write is kept"
    );
    let kustomization = std::fs::read_to_string(out.join("kustomization.yaml")).unwrap();
    assert!(!kustomization.contains("web-b"), "{kustomization}");
}
