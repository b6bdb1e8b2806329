//! HTTPS in `ten serve`: what is asked (`[settings.tls]`, overridden by `ten serve --tls
//! --email --staging --https-port --http-port`), the handshake of each connection on the
//! HTTPS port, and the plain HTTP port, which redirects to HTTPS.
//!
//! With HTTPS, ten listens on three ports: `https_port` (443) and `http_port` (80) on the
//! bind address, for everyone, and `--port` on 127.0.0.1 only, plain HTTP for the CLI on
//! this machine.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Request, Response, StatusCode, header};
use tokio_rustls::TlsAcceptor;

use crate::body::{self, Body};
use crate::config::model::TlsSettings;
use crate::tls::{Acme, LETS_ENCRYPT_PRODUCTION_DIRECTORY, LETS_ENCRYPT_STAGING_DIRECTORY};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What `ten serve`'s flags say of HTTPS; each overrides `[settings.tls]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct TlsFlags {
    /// `--tls`: serve HTTPS even if `[settings.tls] enabled` is not set.
    pub enabled: bool,
    pub email: Option<String>,
    pub staging: bool,
    pub https_port: Option<u16>,
    pub http_port: Option<u16>,
}

/// HTTPS as it will be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Https {
    pub acme: Acme,
    pub https_port: u16,
    pub http_port: u16,
}

/// Why HTTPS cannot be served as asked.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct HttpsError {
    pub message: String,
    pub hint: String,
}

/// HTTPS as `settings` and `flags` ask for it, for `domain`; `None` when not asked.
pub(crate) fn https_settings(
    settings: &TlsSettings,
    flags: &TlsFlags,
    domain: &str,
    data_dir: &Path,
) -> Result<Option<Https>, HttpsError> {
    if !(settings.enabled || flags.enabled) {
        if flags.email.is_some() || flags.staging {
            return Err(HttpsError {
                message: "--email and --staging are for HTTPS, which is not enabled".into(),
                hint: "add --tls (or `enabled = true` in [settings.tls])".into(),
            });
        }
        return Ok(None);
    }
    let public = domain.contains('.')
        && domain.parse::<IpAddr>().is_err()
        && !domain.ends_with(".localhost");
    if !public {
        return Err(HttpsError {
            message: format!("HTTPS needs a public domain for its certificates, and the domain is `{domain}`"),
            hint: "set `domain` in [settings.tls] or pass --domain example.com (its DNS, and that of *.example.com, pointing at this server)".into(),
        });
    }
    let staging = settings.staging || flags.staging;
    let directory_url = match (&settings.acme_directory, staging) {
        (Some(url), false) => url.clone(),
        (None, true) => LETS_ENCRYPT_STAGING_DIRECTORY.to_string(),
        (None, false) => LETS_ENCRYPT_PRODUCTION_DIRECTORY.to_string(),
        (Some(_), true) => {
            return Err(HttpsError {
                message: "--staging asks for Let's Encrypt's staging server, and `acme_directory` in [settings.tls] names another".into(),
                hint: "drop --staging, or `acme_directory`".into(),
            });
        }
    };
    let https_port = flags.https_port.unwrap_or(settings.https_port);
    let http_port = flags.http_port.unwrap_or(settings.http_port);
    if https_port == http_port && https_port != 0 {
        return Err(HttpsError {
            message: format!("HTTPS and its redirect cannot share port {https_port}"),
            hint: "give --https-port and --http-port different ports (443 and 80 usually)".into(),
        });
    }
    Ok(Some(Https {
        acme: Acme {
            directory_url,
            email: flags.email.clone().or_else(|| settings.acme_email.clone()),
            cache_dir: settings
                .cache_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("acme")),
            extra_roots: settings.acme_root.clone(),
        },
        https_port,
        http_port,
    }))
}

/// The TLS side of a connection on the HTTPS port, once its handshake is done; `None` when
/// it failed, took too long, or was an ACME server's challenge (answered by the handshake
/// itself).
pub(crate) async fn handshake<S>(
    acceptor: &TlsAcceptor,
    stream: S,
    peer: SocketAddr,
    timers: &crate::proxy::timers::Timers,
) -> Option<tokio_rustls::server::TlsStream<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let stream = tokio::select! {
        accepted = acceptor.accept(stream) => match accepted {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return None;
            }
        },
        () = timers.sleep_until(deadline) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    let challenge =
        stream.get_ref().1.alpn_protocol() == Some(rustls_acme::acme::ACME_TLS_ALPN_NAME);
    (!challenge).then_some(stream)
}

/// The answer on the plain HTTP port (but for `/health`, which ten answers there as on
/// HTTPS): a 404 for HTTP-01 challenges (ten answers TLS-ALPN-01 ones), and for everything
/// else a permanent redirect (308, so the method and body are kept) to the same host and
/// target over HTTPS.
pub(crate) fn redirect<B>(request: &Request<B>, https_port: u16) -> Response<Body> {
    if request
        .uri()
        .path()
        .starts_with("/.well-known/acme-challenge/")
    {
        return body::text(
            StatusCode::NOT_FOUND,
            "ten answers ACME challenges over TLS (TLS-ALPN-01), not here",
        );
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().host());
    let Some(host) = host
        .map(super::http::bare_host)
        .filter(|host| !host.is_empty())
    else {
        return body::text(
            StatusCode::BAD_REQUEST,
            "a request without a Host cannot be sent to HTTPS",
        );
    };
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let location = format!("https://{host}{port}{target}");
    Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(header::LOCATION, location)
        .body(body::full(""))
        .expect("a Location made of a valid host and target")
}

/// The acceptor of the HTTPS port.
pub(crate) fn acceptor(config: Arc<rustls::ServerConfig>) -> TlsAcceptor {
    TlsAcceptor::from(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(enabled: bool) -> TlsSettings {
        TlsSettings {
            enabled,
            ..crate::config::model::Settings::defaults(Path::new("/etc/ten")).tls
        }
    }

    #[test]
    fn https_is_served_when_enabled_by_the_settings_or_the_flag() {
        let data = Path::new("/srv/ten");
        let off = https_settings(&settings(false), &TlsFlags::default(), "example.com", data);
        assert_eq!(off.unwrap(), None);
        let flags = TlsFlags {
            enabled: true,
            email: Some("ops@example.com".into()),
            ..TlsFlags::default()
        };
        let https = https_settings(&settings(false), &flags, "example.com", data)
            .unwrap()
            .unwrap();
        assert_eq!(https.acme.directory_url, LETS_ENCRYPT_PRODUCTION_DIRECTORY);
        assert_eq!(https.acme.email.as_deref(), Some("ops@example.com"));
        assert_eq!(https.acme.cache_dir, data.join("acme"));
        assert_eq!((https.https_port, https.http_port), (443, 80));
        let staging = TlsFlags {
            staging: true,
            ..TlsFlags::default()
        };
        let https = https_settings(&settings(true), &staging, "example.com", data)
            .unwrap()
            .unwrap();
        assert_eq!(https.acme.directory_url, LETS_ENCRYPT_STAGING_DIRECTORY);
    }

    #[test]
    fn https_refuses_what_cannot_have_a_certificate_and_flags_without_tls() {
        let data = Path::new("/srv/ten");
        for domain in ["localhost", "127.0.0.1", "ten.localhost", "intranet"] {
            let error =
                https_settings(&settings(true), &TlsFlags::default(), domain, data).unwrap_err();
            assert!(error.message.contains("public domain"), "{domain}: {error}");
        }
        let email_only = TlsFlags {
            email: Some("ops@example.com".into()),
            ..TlsFlags::default()
        };
        let error = https_settings(&settings(false), &email_only, "example.com", data).unwrap_err();
        assert!(error.hint.contains("--tls"));
    }

    #[test]
    fn plain_http_redirects_to_the_same_target_over_https() {
        let request = |target: &str| {
            Request::builder()
                .uri(target)
                .header(header::HOST, "Alice.Notes.Example.com:80")
                .body(())
                .unwrap()
        };
        let response = redirect(&request("/a/b?c=d"), 443);
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://alice.notes.example.com/a/b?c=d"
        );
        let response = redirect(&request("/"), 8443);
        assert_eq!(
            response.headers()[header::LOCATION],
            "https://alice.notes.example.com:8443/"
        );
        let challenge = redirect(&request("/.well-known/acme-challenge/x"), 443);
        assert_eq!(challenge.status(), StatusCode::NOT_FOUND);
    }
}
