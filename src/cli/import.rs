//! `ten import FILE`: another supervisor's configuration made into ten's files. Without
//! `--output` or `--yes` it shows what it would write (a diff against what is there) and the
//! report, and writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::import::{
    Format, ImportError, Imported, Source, detect_format, import, render_file_diff, render_report,
};

use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout, stdout_style};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import: supervisord.conf (or Supervice's), a Procfile, process-compose.yaml,
    /// or pm2's ecosystem.config.json
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Its format [default: told by the file's name, else by its content]
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(Format::KEYWORDS))]
    pub format: Option<String>,

    /// Write the files into DIR (made if missing)
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Write the files (into the current directory unless --output says where)
    #[arg(long, short)]
    pub yes: bool,

    /// Overwrite a tenement.toml or instance file that exists and differs
    #[arg(long)]
    pub force: bool,

    /// Print the files and the report as JSON (with a `format_version`)
    #[arg(long)]
    pub json: bool,
}

/// A file to write, and how it compares with what is there.
struct Planned<'a> {
    file: &'a crate::import::OutputFile,
    path: PathBuf,
    existing: Option<String>,
}

impl Planned<'_> {
    fn status(&self) -> &'static str {
        match &self.existing {
            None => "new",
            Some(existing) if *existing == self.file.text => "unchanged",
            Some(_) => "changed",
        }
    }
}

pub(super) fn run(_global: &GlobalArgs, args: &ImportArgs) -> Result<u8, CliError> {
    let imported = read_and_import(args)?;
    if imported.services.is_empty() {
        if !args.json {
            print_stderr(&render_report(&imported, super::stderr_style()));
        }
        return Err(CliError::new(format!(
            "nothing to import: {} declares no process ten can run",
            imported.source
        ))
        .hint("the report above says what was left out and why"));
    }
    let cwd = std::env::current_dir()
        .map_err(|error| CliError::new(format!("cannot read the working directory: {error}")))?;
    let dir = args.output.clone().unwrap_or(cwd);
    let write = args.output.is_some() || args.yes;
    let mut planned = Vec::new();
    for file in &imported.files {
        let path = dir.join(&file.path);
        let existing = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(CliError::new(format!(
                    "cannot read {}: {error}",
                    path.display()
                )));
            }
        };
        planned.push(Planned {
            file,
            path,
            existing,
        });
    }
    if write {
        refuse_overwrites(&planned, args.force)?;
        for plan in &planned {
            if plan.status() != "unchanged" {
                write_file(&plan.path, &plan.file.text)?;
            }
        }
    }
    if args.json {
        print_stdout(&json(&imported, &planned, &dir, write))?;
    } else {
        print_stdout(&text(&imported, &planned, &dir, write, args))?;
    }
    Ok(exit::OK)
}

fn read_and_import(args: &ImportArgs) -> Result<Imported, CliError> {
    let path = &args.file;
    let text = std::fs::read_to_string(path).map_err(|error| {
        CliError::new(format!("cannot read {}: {error}", path.display())).hint(
            "give the path of the file to import, e.g. ten import /etc/supervisor/supervisord.conf",
        )
    })?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|path| path.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let dir = dir.display().to_string();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|host| host.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string());
    let base = PathBuf::from(&dir);
    let is_binary = move |path: &str| -> Option<bool> {
        use std::io::Read;
        let mut head = [0u8; 512];
        let mut file = std::fs::File::open(base.join(path)).ok()?;
        let read = file.read(&mut head).ok()?;
        let head = &head[..read];
        // An executable format's magic, or bytes no text has.
        Some(head.starts_with(b"\x7fELF") || head.contains(&0))
    };
    let source = Source {
        text: &text,
        name: &name,
        dir: &dir,
        host: &host,
        env: &env,
        is_binary: &is_binary,
    };
    let format = match &args.format {
        Some(keyword) => Format::from_keyword(keyword)
            .ok_or_else(|| CliError::new(format!("unknown format {keyword:?}")))?,
        None => detect_format(&name, &text).map_err(import_error)?,
    };
    import(&source, format).map_err(import_error)
}

fn import_error(error: ImportError) -> CliError {
    let hint = match &error {
        ImportError::UnknownFormat { .. } => {
            "say which with --format supervisord | procfile | process-compose | pm2".to_string()
        }
        ImportError::Pm2JavaScript { name } => format!(
            "make the JSON form and import that: node -e 'console.log(JSON.stringify(require(\"./{name}\"), null, 2))' > ecosystem.config.json"
        ),
        _ => {
            "fix the file (its own supervisor would refuse it too), or say its format with --format"
                .to_string()
        }
    };
    CliError::new(error.to_string()).hint(hint)
}

/// Files that exist and differ are replaced only with `--force`.
fn refuse_overwrites(planned: &[Planned<'_>], force: bool) -> Result<(), CliError> {
    let differing: Vec<&Planned<'_>> = planned
        .iter()
        .filter(|plan| plan.status() == "changed")
        .collect();
    if differing.is_empty() || force {
        return Ok(());
    }
    let style = super::stderr_style();
    for plan in &differing {
        print_stderr(&render_file_diff(
            plan.file,
            plan.existing.as_deref(),
            style,
        ));
    }
    let names: Vec<String> = differing
        .iter()
        .map(|plan| plan.path.display().to_string())
        .collect();
    Err(CliError::new(format!(
        "{} already exist{} and differ{} from what the import makes (diff above); nothing was written",
        names.join(", "),
        if names.len() == 1 { "s" } else { "" },
        if names.len() == 1 { "s" } else { "" },
    ))
    .hint("pass --force to overwrite, or --output DIR to write elsewhere"))
}

fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    let error =
        |error: std::io::Error| CliError::new(format!("cannot write {}: {error}", path.display()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    crate::files::write_atomically(path, text.as_bytes(), 0o644).map_err(error)
}

fn text(
    imported: &Imported,
    planned: &[Planned<'_>],
    dir: &Path,
    written: bool,
    args: &ImportArgs,
) -> String {
    let style = stdout_style();
    let mut out = String::new();
    if !written {
        for plan in planned {
            out.push_str(&render_file_diff(
                plan.file,
                plan.existing.as_deref(),
                style,
            ));
        }
        out.push('\n');
    }
    out.push_str(&render_report(imported, style));
    out.push('\n');
    if written {
        let changed: Vec<&str> = planned
            .iter()
            .filter(|plan| plan.status() != "unchanged")
            .map(|plan| plan.file.path.as_str())
            .collect();
        if changed.is_empty() {
            out.push_str(&format!(
                "Nothing to write: the files in {} are already these.\n",
                dir.display()
            ));
        } else {
            out.push_str(&format!(
                "{} {} in {}\n",
                style.green("Wrote"),
                changed.join(", "),
                dir.display()
            ));
        }
        out.push_str(&format!(
            "Next: check the `# not imported:` comments, then `ten validate` and `ten serve` in {}.\n",
            dir.display()
        ));
    } else {
        out.push_str(&format!(
            "Nothing was written. To write these files: ten import {} --output DIR (or --yes for {})\n",
            args.file.display(),
            dir.display()
        ));
    }
    out
}

fn json(imported: &Imported, planned: &[Planned<'_>], dir: &Path, written: bool) -> String {
    let files: Vec<serde_json::Value> = planned
        .iter()
        .map(|plan| {
            serde_json::json!({
                "path": plan.file.path,
                "status": plan.status(),
                "text": plan.file.text,
            })
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&serde_json::json!({
        "format_version": 1,
        "format": imported.format,
        "dialect": imported.dialect,
        "source": imported.source,
        "output": dir,
        "written": written,
        "services": imported.services,
        "files": files,
        "report": imported.report,
    }))
    .unwrap_or_default();
    text.push('\n');
    text
}
