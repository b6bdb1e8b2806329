//! `ten export kubernetes|nomad`: the declared services and instances as another engine's
//! files, read offline (no server needed). The documents go to stdout (multi-document YAML,
//! HCL or JSON) or, with `--out DIR`, one file each; what cannot be mapped is a warning on
//! stderr (or in the JSON with `--json`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};

use crate::desired::DesiredState;
use crate::export::kubernetes::{self, KubernetesOptions};
use crate::export::nomad::{self, Driver, Format, NomadOptions};
use crate::export::{Export, Warning};

use super::context::{Context, skip_drop};
use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout, stderr_style};

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub target: ExportTarget,
}

impl ExportArgs {
    pub(super) fn json(&self) -> bool {
        match &self.target {
            ExportTarget::Kubernetes(args) => args.common.json,
            ExportTarget::Nomad(args) => args.common.json,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// Kubernetes objects: per instance a StatefulSet (1 replica) with a PersistentVolumeClaim
    /// for its data directory, a Service and a Secret for secret-looking env; per service an
    /// Ingress for ID.SERVICE.DOMAIN and SERVICE.DOMAIN
    ///
    /// The image (--image) must hold the project directory (tenement.toml's) at /app; the
    /// data directory is /data, each instance's volume at /data/SERVICE/ID, and paths in
    /// commands and env are rewritten to match. Every container listens on PORT=8080. With
    /// --knative, instances that sleep (idle_timeout, start = "on-demand") become Knative
    /// Services that scale to zero, with a DomainMapping for their hostname.
    ///
    /// Check the result with `kubectl kustomize DIR` after `--out DIR` (a kustomization.yaml
    /// listing the files is written there), apply it with `kubectl apply -k DIR`.
    Kubernetes(KubernetesArgs),
    /// Nomad jobs: one per service, one group per instance, raw_exec (or exec) running the
    /// same command and env, Consul services tagged for Traefik
    ///
    /// The data directory is the client's host volume `ten-data` (declare it in the client's
    /// config: host_volume "ten-data" { path = "DATA_DIR" }). Secret-looking env values are
    /// read from Nomad Variables at nomad/jobs/SERVICE/ID (the warnings say which to set).
    /// Run a job with `nomad job run DIR/SERVICE.nomad.hcl`, or `--format json` and
    /// `nomad job run -json`.
    Nomad(NomadArgs),
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Hostnames are ID.SERVICE.DOMAIN and SERVICE.DOMAIN [default: domain of
    /// [settings.tls], else localhost]
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,

    /// Write one file per document in DIR (created if missing) instead of printing them
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Print the documents (as JSON values), the files written and the warnings as one JSON
    /// object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KubernetesArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Namespace of every object [default: none, kubectl's current one]
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Container image: IMAGE for every service, or SERVICE=IMAGE (repeat it) [default:
    /// SERVICE:latest]
    #[arg(long, value_name = "IMAGE")]
    pub image: Vec<String>,

    /// storageClassName of the data volumes [default: the cluster's default class]
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,

    /// ingressClassName of the Ingresses [default: the cluster's default class]
    #[arg(long, value_name = "CLASS")]
    pub ingress_class: Option<String>,

    /// Instances that sleep become Knative Services that scale to zero
    #[arg(long)]
    pub knative: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DriverArg {
    /// A plain process on the client, like ten's (no isolation)
    RawExec,
    /// Nomad's isolation: namespaces, cgroups and a chroot
    Exec,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Hcl,
    /// The jobspec JSON of Nomad's API ({"Job": ...}), for `nomad job run -json`
    Json,
}

#[derive(Debug, Args)]
pub struct NomadArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Datacenters the jobs may run in (repeat it)
    #[arg(long, value_name = "DC", default_values_t = ["dc1".to_string()])]
    pub datacenter: Vec<String>,

    /// The task driver
    #[arg(long, value_enum, default_value = "raw-exec")]
    pub driver: DriverArg,

    /// The jobs' file format
    #[arg(long, value_enum, default_value = "hcl")]
    pub format: FormatArg,
}

pub(super) fn run(global: &GlobalArgs, args: &ExportArgs) -> Result<u8, CliError> {
    let context = Context::load(global)?;
    let Some(desired) = context.report_diagnostics() else {
        return Err(CliError::new("the files have errors: nothing exported")
            .hint("fix the problems above (`ten validate` lists them), then export again"));
    };
    let (common, kind) = match &args.target {
        ExportTarget::Kubernetes(args) => (&args.common, Kind::Kubernetes),
        ExportTarget::Nomad(args) => (&args.common, Kind::Nomad),
    };
    let (domain, domain_warning) = domain(desired, common);
    let mut export = match &args.target {
        ExportTarget::Kubernetes(args) => kubernetes::export(
            desired,
            &KubernetesOptions {
                namespace: args.namespace.clone(),
                images: args.image.clone(),
                storage_class: args.storage_class.clone(),
                domain,
                ingress_class: args.ingress_class.clone(),
                knative: args.knative,
            },
        ),
        ExportTarget::Nomad(args) => nomad::export(
            desired,
            &NomadOptions {
                datacenters: args.datacenter.clone(),
                driver: match args.driver {
                    DriverArg::RawExec => Driver::RawExec,
                    DriverArg::Exec => Driver::Exec,
                },
                domain,
                format: match args.format {
                    FormatArg::Hcl => Format::Hcl,
                    FormatArg::Json => Format::Json,
                },
            },
        ),
    }
    .map_err(|error| CliError::new(error.to_string()).hint(error.hint()))?;
    if let Some(warning) = domain_warning {
        export.warnings.insert(0, warning);
    }
    if export.documents.is_empty() {
        return Err(
            CliError::new("no instance is declared: nothing to export").hint(
                "declare instances in instances/SERVICE/ID.toml or in [instances] of tenement.toml",
            ),
        );
    }
    let written = match &common.out {
        Some(dir) => write_files(dir, &export, kind)?,
        None => Vec::new(),
    };
    if common.json {
        let value = serde_json::json!({
            "format_version": 1,
            "target": kind.name(),
            "documents": export.documents,
            "written": written,
            "warnings": export.warnings,
        });
        print_stdout(&crate::render::json::to_pretty(&value))?;
    } else {
        if common.out.is_none() {
            let text: String = export.documents.iter().map(|d| d.text.as_str()).collect();
            print_stdout(&text)?;
        }
        print_warnings(&export.warnings);
        if let Some(dir) = &common.out {
            print_stderr(&format!(
                "wrote {} files to {}{}\n",
                written.len(),
                context.shown(dir).display(),
                kind.next_step(&context.shown(dir))
            ));
        }
    }
    skip_drop(context);
    Ok(exit::OK)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Kubernetes,
    Nomad,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kubernetes => "kubernetes",
            Kind::Nomad => "nomad",
        }
    }

    fn next_step(self, dir: &Path) -> String {
        match self {
            Kind::Kubernetes => format!(
                "; check them with `kubectl kustomize {0}`, apply with `kubectl apply -k {0}`",
                dir.display()
            ),
            Kind::Nomad => format!(
                "; run a job with `nomad job run {}/SERVICE.nomad.hcl`",
                dir.display()
            ),
        }
    }
}

/// The first line of the kustomization.yaml ten writes, by which it knows its own.
const KUSTOMIZATION_HEADER: &str = "# Written by `ten export kubernetes`: every exported file.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n";

/// The files listed by a kustomization.yaml that ten wrote (none for one it did not write,
/// or a name that is not a plain file name of its own).
fn earlier_files(kustomization: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(kustomization) else {
        return Vec::new();
    };
    let Some(list) = text.strip_prefix(KUSTOMIZATION_HEADER) else {
        return Vec::new();
    };
    list.lines()
        .filter_map(|line| line.strip_prefix("  - "))
        .filter(|file| file.ends_with(".yaml") && !file.contains('/') && !file.starts_with('.'))
        .map(str::to_string)
        .collect()
}

/// `--domain`, else `[settings.tls] domain`, else localhost (with a warning).
fn domain(desired: &DesiredState, common: &CommonArgs) -> (String, Option<Warning>) {
    if let Some(domain) = &common.domain {
        return (domain.to_ascii_lowercase(), None);
    }
    if let Some(domain) = &desired.config.settings.tls.domain {
        return (domain.to_ascii_lowercase(), None);
    }
    (
        "localhost".into(),
        Some(Warning {
            subject: "export".into(),
            key: "domain".into(),
            reason: "no domain given: hostnames end in .localhost; pass --domain DOMAIN (or set domain in [settings.tls])".into(),
        }),
    )
}

fn print_warnings(warnings: &[Warning]) {
    let style = stderr_style();
    let mut text = String::new();
    for warning in warnings {
        text.push_str(&format!("{} {warning}\n", style.yellow("warning:")));
    }
    print_stderr(&text);
}

/// Writes each document to its file in `dir` (a Secret's and Nomad's jobs, which may name
/// secrets' places, readable by the owner only), and for Kubernetes a kustomization.yaml that
/// lists them.
fn write_files(dir: &Path, export: &Export, kind: Kind) -> Result<Vec<String>, CliError> {
    std::fs::create_dir_all(dir).map_err(|error| {
        CliError::new(format!("cannot create {}: {error}", dir.display()))
            .hint("pass --out a directory you can write to")
    })?;
    let mut written = Vec::new();
    let write = |file: &str, text: &str, mode: u32| {
        let path = dir.join(file);
        crate::files::write_atomically(&path, text.as_bytes(), mode).map_err(|error| {
            CliError::new(format!("cannot write {}: {error}", path.display()))
                .hint("pass --out a directory you can write to")
        })
    };
    for document in &export.documents {
        let mode = if document.kind == "Secret" {
            0o600
        } else {
            0o644
        };
        write(&document.file, &document.text, mode)?;
        written.push(document.file.clone());
    }
    if let Kind::Kubernetes = kind {
        // The files an earlier export listed that this one does not write (instances
        // removed since) go, so the directory is this export and nothing else.
        let kustomization = dir.join("kustomization.yaml");
        for file in earlier_files(&kustomization) {
            if !written.contains(&file) {
                let path = dir.join(&file);
                std::fs::remove_file(&path).or_else(|error| match error.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(
                        CliError::new(format!("cannot remove {}: {error}", path.display()))
                            .hint("remove it yourself: the export no longer has it"),
                    ),
                })?;
            }
        }
        let mut text = String::from(KUSTOMIZATION_HEADER);
        for document in &export.documents {
            text.push_str(&format!("  - {}\n", document.file));
        }
        write("kustomization.yaml", &text, 0o644)?;
        written.push("kustomization.yaml".into());
    }
    Ok(written)
}
