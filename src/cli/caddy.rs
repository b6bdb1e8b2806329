//! `ten caddy`: a Caddyfile for running ten behind Caddy, which gets wildcard certificates for
//! the domain and its tenants and passes every request to ten.
//!
//! This file finds what the Caddyfile says (domain, email, port, the services) and prints it
//! or writes it atomically; `caddyfile` makes its text, purely. Messages go to stderr: stdout
//! is the Caddyfile alone.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::Config;
use crate::render::render_diagnostics;

use super::context::find_config_path;
use super::{CliError, GlobalArgs, exit, print_stderr, print_stdout, stderr_style};

#[derive(Debug, Args)]
pub struct CaddyArgs {
    /// The root domain ten serves: DOMAIN, SERVICE.DOMAIN and ID.SERVICE.DOMAIN [default:
    /// `domain` in [settings.tls]]
    #[arg(long)]
    pub domain: Option<String>,

    /// Contact address for the ACME account [default: `acme_email` in [settings.tls]]
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,

    /// ten's port, where Caddy sends the requests (as `ten serve --port`)
    #[arg(long, default_value_t = 8080, env = "TENEMENT_PORT")]
    pub port: u16,

    /// Write the Caddyfile to FILE (replaced atomically) instead of printing it
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// What the Caddyfile is made of.
#[derive(Debug, Clone, PartialEq)]
struct Site {
    /// Lowercase, no trailing dot.
    domain: String,
    email: Option<String>,
    port: u16,
    /// The services' names: each has `*.SERVICE.DOMAIN` for its instances.
    services: Vec<String>,
}

pub(super) fn run(global: &GlobalArgs, args: &CaddyArgs) -> Result<u8, CliError> {
    let config = load_config(global)?;
    let site = site(&config, args)?;
    let text = caddyfile(&site);
    match &args.output {
        Some(path) => write_caddyfile(path, &text)?,
        None => print_stdout(&text)?,
    }
    print_stderr(&notes(&config, &site, args.output.as_deref()));
    Ok(exit::OK)
}

/// tenement.toml, valid (its services are named in the Caddyfile).
fn load_config(global: &GlobalArgs) -> Result<Config, CliError> {
    let config_path = find_config_path(global)?;
    let mut diagnostics = Vec::new();
    let parsed = crate::desired::read_config(&config_path, &mut diagnostics);
    parsed.config.ok_or_else(|| {
        print_stderr(&render_diagnostics(
            &diagnostics,
            config_path.parent().unwrap_or(Path::new("")),
            stderr_style(),
        ));
        CliError::new("the config has errors; no Caddyfile was made")
            .hint("fix them (`ten validate` shows every problem) and run `ten caddy` again")
    })
}

/// The site from the flags, else [settings.tls], checked.
fn site(config: &Config, args: &CaddyArgs) -> Result<Site, CliError> {
    let tls = &config.settings.tls;
    let domain = args.domain.as_ref().or(tls.domain.as_ref());
    let Some(domain) = domain.filter(|domain| !domain.trim().is_empty()) else {
        return Err(CliError::new(
            "no domain: a Caddyfile needs the public domain that ten serves",
        )
        .hint("set domain in [settings.tls] or pass --domain"));
    };
    let email = args.email.as_ref().or(tls.acme_email.as_ref());
    Ok(Site {
        domain: check_domain(domain)?,
        email: email.map(|email| check_email(email)).transpose()?,
        port: args.port,
        services: config.services.keys().map(ToString::to_string).collect(),
    })
}

/// `domain` lowercased, if it is a public DNS name Caddy can get certificates for.
fn check_domain(domain: &str) -> Result<String, CliError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let hint = "set domain in [settings.tls] or pass --domain";
    if domain == "localhost" || domain.ends_with(".localhost") {
        return Err(CliError::new(format!(
            "`{domain}` is local: no certificate authority issues certificates for it, and ten serves it over plain HTTP already"
        ))
        .hint(format!("{hint}, with the public domain whose DNS points at this server")));
    }
    // Labels by the DNS rule (which service names and ids follow too).
    let labels_ok = domain
        .split('.')
        .all(|label| crate::names::check_label(label).is_ok());
    if domain.parse::<IpAddr>().is_ok() || !domain.contains('.') || !labels_ok || domain.len() > 253
    {
        return Err(CliError::new(format!(
            "`{domain}` is not a domain name Caddy can get wildcard certificates for"
        ))
        .hint(format!("{hint}, e.g. --domain example.com")));
    }
    Ok(domain)
}

/// `email`, if it is one address and nothing the Caddyfile would read as more.
fn check_email(email: &str) -> Result<String, CliError> {
    let odd = |c: char| c.is_whitespace() || c.is_control() || "{}\"'#`".contains(c);
    if !email.contains('@') || email.chars().any(odd) {
        return Err(CliError::new(format!("`{email}` is not an email address"))
            .hint("set acme_email in [settings.tls] or pass --email admin@example.com"));
    }
    Ok(email.to_string())
}

fn write_caddyfile(path: &Path, text: &str) -> Result<(), CliError> {
    crate::files::write_atomically(path, text.as_bytes(), 0o644).map_err(|error| {
        CliError::new(format!("cannot write {}: {error}", path.display()))
            .hint("check that its directory exists and that you may write there")
    })
}

/// What the user still has to do, for stderr.
fn notes(config: &Config, site: &Site, output: Option<&Path>) -> String {
    let style = stderr_style();
    let note = style.bold("note:");
    let mut text = String::new();
    if let Some(path) = output {
        text.push_str(&format!("Wrote {}.\n", path.display()));
    }
    text.push_str(&format!(
        "{note} wildcard certificates need a Caddy built with your DNS provider's module: uncomment the `tls` block and name the provider (the file says how)\n"
    ));
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if !config
        .settings
        .trusted_proxies
        .iter()
        .any(|range| range.contains(local))
    {
        text.push_str(&format!(
            "{note} add trusted_proxies = [\"127.0.0.1\"] to [settings] in tenement.toml, so that ten believes Caddy's X-Forwarded-* headers\n"
        ));
    }
    text.push_str(&format!(
        "{note} run ten as `ten serve --domain {} --port {} --bind 127.0.0.1`\n",
        site.domain, site.port
    ));
    text
}

/// The Caddyfile for `site`: Caddy's own options, the site with wildcard certificates (its DNS
/// provider left to the user), and on-demand TLS as a commented alternative.
fn caddyfile(site: &Site) -> String {
    // No blank line between the header and the global options: `caddy fmt` (2.6) removes
    // it, and Caddy warns about input that `caddy fmt` would change.
    let mut text = header(site);
    text.push_str(&global_options(site, false));
    text.push('\n');
    text.push_str(&wildcard_site(site));
    text.push('\n');
    text.push_str(&on_demand_alternative(site));
    text
}

/// What the file is and what ten needs to go with it.
fn header(site: &Site) -> String {
    let Site { domain, port, .. } = site;
    format!(
        "\
# Caddy in front of ten: HTTPS for {domain} and its tenants. Made by `ten caddy`.
#
# Caddy ends TLS and passes every request to ten on 127.0.0.1:{port}, with its Host (which
# routes it to a tenant) and X-Forwarded-For, -Proto and -Host (Caddy sets them itself,
# replacing what clients send). Run ten where only Caddy reaches it, and let it believe
# Caddy's X-Forwarded-* headers:
#
#   ten serve --domain {domain} --port {port} --bind 127.0.0.1
#   tenement.toml: [settings] trusted_proxies = [\"127.0.0.1\"]
#
# A wildcard covers one label: *.{domain} covers SERVICE.{domain} but not
# ID.SERVICE.{domain}, so each service has a wildcard of its own below. Run `ten caddy`
# again when you add a service.
"
    )
}

/// Caddy's global options: the ACME account's email, and with `on_demand` the `ask` check.
fn global_options(site: &Site, on_demand: bool) -> String {
    let mut text = String::from("{\n");
    match &site.email {
        Some(email) => text.push_str(&format!("\temail {email}\n")),
        None => text.push_str(
            "\t# email admin@example.com    # acme_email in [settings.tls] or --email: your CA's notices\n",
        ),
    }
    if on_demand {
        text.push_str("\ton_demand_tls {\n\t\task ASK_URL\n\t}\n");
    }
    text.push_str("}\n");
    text
}

/// The host names Caddy serves and gets certificates for.
fn addresses(site: &Site) -> String {
    let domain = &site.domain;
    let mut names = vec![domain.clone(), format!("*.{domain}")];
    names.extend(
        site.services
            .iter()
            .map(|service| format!("*.{service}.{domain}")),
    );
    names.join(", ")
}

/// The site with wildcard certificates through the ACME DNS-01 challenge.
fn wildcard_site(site: &Site) -> String {
    format!(
        "\
{addresses} {{
\t# Wildcard certificates need the ACME DNS-01 challenge, so Caddy must be built with your
\t# DNS provider's module (https://caddyserver.com/docs/modules/ lists them as
\t# dns.providers.*; e.g. `xcaddy build --with github.com/caddy-dns/cloudflare`).
\t# Uncomment the block below and replace PROVIDER with its name and credentials, e.g.
\t# `dns cloudflare {{env.CLOUDFLARE_API_TOKEN}}`. Until then Caddy cannot get the wildcards.
\t# tls {{
\t# \tdns PROVIDER
\t# }}
\treverse_proxy 127.0.0.1:{port}
}}
",
        addresses = addresses(site),
        port = site.port,
    )
}

/// The line after which the alternative's blocks follow, commented out.
const ALTERNATIVE_MARK: &str = "# Replace the two blocks above with these to use it:";

/// On-demand TLS, commented out: no DNS module, a certificate per host name at its first
/// handshake, and an `ask` URL of the user's (ten answers none).
fn on_demand_alternative(site: &Site) -> String {
    let mut text = String::from(
        "\
# The alternative without a DNS module: on-demand TLS. Caddy gets a certificate for each
# host name at its first TLS handshake (HTTP-01 or TLS-ALPN-01: ports 80 and 443 must reach
# it) instead of wildcards. It must ask first whether a name is yours: replace ASK_URL with
# a URL of a service of yours that answers 200 to GET ASK_URL?domain=NAME for the names you
# serve and an error for any other. ten does not answer it; without it, anyone could make
# Caddy request certificates for any name pointing at this server.
",
    );
    text.push_str(ALTERNATIVE_MARK);
    text.push_str("\n#\n");
    let blocks = on_demand_blocks(site);
    for line in blocks.lines() {
        text.push_str(if line.is_empty() { "#" } else { "# " });
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The alternative's blocks, as they are once uncommented.
fn on_demand_blocks(site: &Site) -> String {
    format!(
        "{}\n{} {{\n\ttls {{\n\t\ton_demand\n\t}}\n\treverse_proxy 127.0.0.1:{}\n}}\n",
        global_options(site, true),
        addresses(site),
        site.port
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site {
            domain: "example.com".into(),
            email: Some("admin@example.com".into()),
            port: 8080,
            services: vec!["api".into(), "notes".into()],
        }
    }

    /// The lines of `text` that Caddy reads: neither comments nor blank.
    fn read_by_caddy(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .collect()
    }

    #[test]
    fn the_caddyfile_proxies_the_domain_and_every_tenant_to_ten() {
        assert_eq!(
            read_by_caddy(&caddyfile(&site())),
            [
                "{",
                "\temail admin@example.com",
                "}",
                "example.com, *.example.com, *.api.example.com, *.notes.example.com {",
                "\treverse_proxy 127.0.0.1:8080",
                "}",
            ]
        );
    }

    #[test]
    fn the_dns_provider_is_a_marked_placeholder() {
        let text = caddyfile(&site());
        for line in ["\t# tls {", "\t# \tdns PROVIDER", "\t# }"] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(text.contains("built with your\n\t# DNS provider's module"));
    }

    #[test]
    fn the_on_demand_alternative_uncomments_into_its_blocks() {
        let text = caddyfile(&site());
        let (_, after) = text.split_once(ALTERNATIVE_MARK).unwrap();
        let uncommented: String = after
            .lines()
            .skip(2)
            .map(|line| {
                let line = line.strip_prefix('#').unwrap();
                format!("{}\n", line.strip_prefix(' ').unwrap_or(line))
            })
            .collect();
        assert_eq!(uncommented, on_demand_blocks(&site()));
        assert_eq!(
            read_by_caddy(&uncommented),
            [
                "{",
                "\temail admin@example.com",
                "\ton_demand_tls {",
                "\t\task ASK_URL",
                "\t}",
                "}",
                "example.com, *.example.com, *.api.example.com, *.notes.example.com {",
                "\ttls {",
                "\t\ton_demand",
                "\t}",
                "\treverse_proxy 127.0.0.1:8080",
                "}",
            ]
        );
    }

    #[test]
    fn without_an_email_the_option_is_left_as_a_comment() {
        let site = Site {
            email: None,
            port: 9000,
            services: Vec::new(),
            ..site()
        };
        let text = caddyfile(&site);
        assert_eq!(
            read_by_caddy(&text),
            [
                "{",
                "}",
                "example.com, *.example.com {",
                "\treverse_proxy 127.0.0.1:9000",
                "}",
            ]
        );
        assert!(text.contains("\t# email admin@example.com"), "{text}");
        assert!(text.contains("ten serve --domain example.com --port 9000 --bind 127.0.0.1"));
    }

    #[test]
    fn a_domain_must_be_public_and_a_name() {
        assert_eq!(check_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(
            check_domain("apps.example.co.uk").unwrap(),
            "apps.example.co.uk"
        );
        for local in ["localhost", "notes.localhost"] {
            let error = check_domain(local).unwrap_err();
            assert!(error.message.contains("is local"), "{}", error.message);
            assert!(
                error
                    .hint
                    .unwrap()
                    .contains("set domain in [settings.tls] or pass --domain")
            );
        }
        for bad in [
            "example",
            "192.0.2.1",
            "ex ample.com",
            "*.example.com",
            "-a.example.com",
            "a..b",
        ] {
            let error = check_domain(bad).unwrap_err();
            assert!(
                error.message.contains("not a domain name"),
                "{bad}: {}",
                error.message
            );
        }
    }

    #[test]
    fn an_email_is_one_address() {
        assert_eq!(
            check_email("admin@example.com").unwrap(),
            "admin@example.com"
        );
        for bad in ["admin", "a b@example.com", "admin@example.com}", "a@b\n}"] {
            assert!(check_email(bad).is_err(), "{bad:?}");
        }
    }
}
