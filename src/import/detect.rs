//! The format of a file to import, from its name, else from its content. Pure: must not
//! read the file or parse it (each format's reader does).

use super::ImportError;
use super::model::Format;

/// The format of a file, from its name, else from its content.
pub fn detect_format(name: &str, text: &str) -> Result<Format, ImportError> {
    let lower = name.to_ascii_lowercase();
    let file = lower.rsplit('/').next().unwrap_or(&lower);
    if file.starts_with("procfile") {
        return Ok(Format::Procfile);
    }
    let extension = file.rsplit_once('.').map(|(_, extension)| extension);
    match extension {
        Some("json") => return Ok(Format::Pm2),
        Some("js" | "cjs" | "mjs") => {
            return Err(ImportError::Pm2JavaScript {
                name: name.to_string(),
            });
        }
        Some("yaml" | "yml") => return Ok(Format::ProcessCompose),
        Some("conf" | "ini") => return Ok(Format::Supervisord),
        _ => {}
    }
    let lines = || {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with(['#', ';']))
    };
    let first = lines().next().unwrap_or("");
    if lines().any(|line| {
        line.starts_with("[program:") || line == "[supervisord]" || line == "[supervice]"
    }) {
        Ok(Format::Supervisord)
    } else if first.starts_with('{') || first.starts_with("[{") || first == "[" {
        Ok(Format::Pm2)
    } else if text.lines().any(|line| line.trim_end() == "processes:") {
        Ok(Format::ProcessCompose)
    } else if lines().next().is_some()
        && lines().all(|line| {
            line.split_once(':').is_some_and(|(name, rest)| {
                !name.is_empty()
                    && !rest.trim().is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
        })
    {
        Ok(Format::Procfile)
    } else {
        Err(ImportError::UnknownFormat {
            name: name.to_string(),
        })
    }
}
