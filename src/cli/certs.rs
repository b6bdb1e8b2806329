//! `ten certs`: the certificates of HTTPS, one line per name: state, issuer, expiry, orders
//! and the last error.

use clap::Args;

use crate::api::types::{CertState, CertsView};

use super::client::Client;
use super::table::{short_duration, table};
use super::{CliError, GlobalArgs, exit, print_stdout, stdout_style};

#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Print JSON (`{https, directory, names: [...]}`)
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(global: &GlobalArgs, args: &CertsArgs) -> Result<u8, CliError> {
    let client = Client::new(global)?;
    let view: CertsView = client.get("/api/certs")?;
    if args.json {
        let mut text = serde_json::to_string_pretty(&view).unwrap_or_default();
        text.push('\n');
        print_stdout(&text)?;
        return Ok(exit::OK);
    }
    if !view.https {
        print_stdout(
            "ten does not serve HTTPS: enable it with `enabled = true` in [settings.tls] or `ten serve --tls`.\n",
        )?;
        return Ok(exit::OK);
    }
    print_stdout(&render(&view, crate::tls::now_unix()))?;
    Ok(exit::OK)
}

fn render(view: &CertsView, now_unix: i64) -> String {
    let style = stdout_style();
    let rows: Vec<Vec<String>> = view
        .names
        .iter()
        .map(|name| {
            let state = name.state.as_str().to_string();
            let state = match name.state {
                CertState::Valid => style.green(&state),
                CertState::Expired | CertState::Retrying => style.red(&state),
                CertState::Ordering => style.yellow(&state),
                CertState::Undeclared => state,
            };
            let facts = name.certificate.as_ref();
            let expires = facts.map_or_else(
                || "-".into(),
                |facts| {
                    let left = facts.not_after_unix - now_unix;
                    let when = date(facts.not_after_unix);
                    if left > 0 {
                        format!("{when} (in {})", short_duration(left as u64))
                    } else {
                        format!("{when} (past)")
                    }
                },
            );
            vec![
                name.name.clone(),
                state,
                facts.map_or_else(|| "-".into(), |facts| facts.issuer.clone()),
                expires,
                name.orders.to_string(),
                name.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut text = format!(
        "Certificates from {}\n",
        view.directory.as_deref().unwrap_or("?")
    );
    text.push_str(&table(
        &["NAME", "STATE", "ISSUER", "EXPIRES", "ORDERS", "LAST ERROR"],
        &rows,
    ));
    text
}

/// `2027-03-06 05:40` (UTC).
fn date(unix: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    let stamp = humantime::format_rfc3339_seconds(time).to_string();
    stamp.get(..16).unwrap_or(&stamp).replace('T', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{CertFacts, CertView};

    #[test]
    fn each_name_shows_its_state_issuer_expiry_and_last_error() {
        let view = CertsView {
            https: true,
            directory: Some("https://ca.example/dir".into()),
            names: vec![
                CertView {
                    name: "a.notes.example.com".into(),
                    state: CertState::Valid,
                    certificate: Some(CertFacts {
                        issuer: "Pebble Intermediate CA".into(),
                        not_before_unix: 0,
                        not_after_unix: 86_400 * 90,
                    }),
                    orders: 1,
                    failures: 0,
                    last_error: None,
                },
                CertView {
                    name: "b.notes.example.com".into(),
                    state: CertState::Retrying,
                    certificate: None,
                    orders: 2,
                    failures: 2,
                    last_error: Some("connection refused".into()),
                },
            ],
        };
        let text = render(&view, 86_400 * 30);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Certificates from https://ca.example/dir");
        assert!(lines[1].starts_with("NAME"), "{text}");
        assert!(
            lines[2].contains("valid")
                && lines[2].contains("Pebble Intermediate CA")
                && lines[2].contains("1970-04-01 00:00 (in 60d)"),
            "{text}"
        );
        assert!(
            lines[3].contains("retrying") && lines[3].ends_with("connection refused"),
            "{text}"
        );
    }
}
