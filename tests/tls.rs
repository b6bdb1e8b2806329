//! HTTPS end to end against a real ACME server (Debian's pebble, see `support::pebble`):
//! certificates for every declared name, ordered while ten serves, none for anything else,
//! kept across restarts, retried until the ACME server answers; HTTP/2, WebSocket and
//! `X-Forwarded-Proto` over TLS; plain HTTP redirects.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use support::pebble::{Pebble, free_port};
use support::server::{TestServer, backend_service, project, within};
use ten::api::types::{CertState, CertsView};

const DOMAIN: &str = "example.test";

/// How long a certificate may take: an order is a handful of round trips to pebble, which
/// validates at once (no random sleep).
const ISSUE_TIMEOUT: Duration = Duration::from_secs(60);

/// ten serving HTTPS for `notes:ID` for each id, with certificates from its own pebble.
struct Https {
    pebble: Pebble,
    dir: tempfile::TempDir,
    server: TestServer,
    https_port: u16,
    http_port: u16,
}

fn tls_settings(pebble: &Pebble, https_port: u16, http_port: u16) -> String {
    format!(
        "[settings.tls]\nenabled = true\ndomain = \"{DOMAIN}\"\nacme_email = \"ops@{DOMAIN}\"\n\
         acme_directory = \"{}\"\nacme_root = \"{}\"\nhttps_port = {https_port}\nhttp_port = {http_port}\n",
        pebble.directory_url(),
        pebble.server_ca().display()
    )
}

fn serve_https(ids: &[&str]) -> Https {
    serve_https_with_validity(ids, None)
}

/// As [`serve_https`], with certificates valid for `validity` seconds.
fn serve_https_with_validity(ids: &[&str], validity: Option<u64>) -> Https {
    let (https_port, http_port) = (free_port(), free_port());
    let pebble = Pebble::start_with_validity(https_port, validity);
    let ids: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    let services = format!(
        "{}\n[instances]\nnotes = [{}]\n",
        backend_service("notes", ""),
        ids.join(", ")
    );
    let dir = project(
        &tls_settings(&pebble, https_port, http_port),
        &services,
        &[],
    );
    let server = TestServer::start(dir.path());
    Https {
        pebble,
        dir,
        server,
        https_port,
        http_port,
    }
}

/// What curl got for `https://NAME:PORT/PATH` (resolved to 127.0.0.1), verifying the
/// certificate against `roots`: the status and HTTP version, then the body; or curl's error.
fn curl_https(
    roots: &Path,
    name: &str,
    port: u16,
    path: &str,
    extra: &[&str],
) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(roots)
        .arg("--resolve")
        .arg(format!("{name}:{port}:127.0.0.1"))
        .args(extra)
        .args(["-w", "\n%{http_code} %{http_version}"])
        .arg(format!("https://{name}:{port}{path}"))
        .output()
        .expect("run curl");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

impl Https {
    fn name(&self, id: &str) -> String {
        format!("{id}.notes.{DOMAIN}")
    }

    fn certs(&self) -> CertsView {
        let output = self.server.ten(&["certs", "--json"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// `/metrics`, asked with the admin token on the CLI's port.
    fn metrics(&self) -> String {
        let token =
            std::fs::read_to_string(self.dir.path().join("tenement-data/api_token")).unwrap();
        let response = support::http::Request::get("/metrics")
            .host("127.0.0.1")
            .bearer(token.trim())
            .send(self.server.address());
        assert_eq!(response.status, 200, "{response:?}");
        response.body
    }

    /// Waits until every one of `names` answers over HTTPS with a certificate that verifies.
    fn wait_served(&self, names: &[String]) -> PathBuf {
        let roots = self.pebble.issuing_roots();
        let served = within(ISSUE_TIMEOUT, || {
            names
                .iter()
                .all(|name| curl_https(&roots, name, self.https_port, "/health", &[]).is_ok())
        });
        assert!(
            served,
            "no certificate in time; ten certs: {:#?}\nten's log:\n{}\npebble:\n{}",
            self.certs(),
            self.server.log(),
            self.pebble.log()
        );
        roots
    }
}

#[test]
fn every_declared_name_is_served_over_https_and_plain_http_redirects() {
    let https = serve_https(&["alice", "bob"]);
    let names = [https.name("alice"), https.name("bob"), DOMAIN.to_string()];
    let roots = https.wait_served(&names);
    for name in &names {
        let answer = curl_https(&roots, name, https.https_port, "/", &["--http1.1"]).unwrap();
        assert!(answer.ends_with("200 1.1"), "{name}: {answer}");
    }
    // The tenant sees the request came over HTTPS.
    let headers = curl_https(&roots, &names[0], https.https_port, "/headers", &[]).unwrap();
    assert!(headers.contains("x-forwarded-proto: https"), "{headers}");
    // Plain HTTP: a permanent redirect to the same target over HTTPS, but /health.
    let mut plain = TcpStream::connect(("127.0.0.1", https.http_port)).unwrap();
    write!(
        plain,
        "POST /notes?x=1 HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        names[0]
    )
    .unwrap();
    let mut answer = String::new();
    plain.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    assert!(
        answer.contains(&format!(
            "location: https://{}:{}/notes?x=1",
            names[0], https.https_port
        )),
        "{answer}"
    );
    let health = support::http::Request::get("/health")
        .host(&names[0])
        .send(("127.0.0.1", https.http_port));
    assert_eq!(health.status, 200, "{health:?}");
    // Each name has its own certificate, from pebble, seen by `ten certs`.
    let certs = https.certs();
    for name in &names {
        let view = certs.names.iter().find(|view| &view.name == name).unwrap();
        assert_eq!(view.state, CertState::Valid, "{view:?}");
        assert!(
            view.certificate.as_ref().unwrap().issuer.contains("Pebble"),
            "{view:?}"
        );
    }
    // The service's weighted name has one too.
    assert!(
        certs
            .names
            .iter()
            .any(|view| view.name == format!("notes.{DOMAIN}"))
    );
}

#[test]
fn http2_and_a_websocket_work_over_tls() {
    let https = serve_https(&["alice"]);
    let name = https.name("alice");
    let roots = https.wait_served(std::slice::from_ref(&name));
    let answer = curl_https(&roots, &name, https.https_port, "/", &["--http2"]).unwrap();
    assert!(answer.ends_with("200 2"), "{answer}");
    let mut socket = websocket_over_tls(&roots, &name, https.https_port);
    for text in ["hello", "over TLS", &"x".repeat(100_000)] {
        socket.send(tungstenite::Message::text(text)).unwrap();
        assert_eq!(socket.read().unwrap().into_text().unwrap().as_str(), text);
    }
    let _ = socket.close(None);
}

type TlsSocket = tungstenite::WebSocket<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

/// A WebSocket to the backend's echo at `wss://NAME:PORT/ws`, the certificate verified
/// against `roots` (HTTP/1.1 over TLS, as browsers open WebSockets).
fn websocket_over_tls(roots: &Path, name: &str, port: u16) -> TlsSocket {
    use rustls::pki_types::pem::PemObject;
    let mut store = rustls::RootCertStore::empty();
    for certificate in rustls::pki_types::CertificateDer::pem_file_iter(roots).unwrap() {
        store.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let stream = rustls::StreamOwned::new(connection, tcp);
    let request = tungstenite::http::Request::builder()
        .uri(format!("wss://{name}:{port}/ws"))
        .header("Host", name)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (socket, response) = tungstenite::client(request, stream).expect("WebSocket handshake");
    assert_eq!(response.status(), 101);
    socket
}

#[test]
fn a_name_declared_while_serving_gets_a_certificate_and_an_undeclared_one_orders_nothing() {
    let https = serve_https(&["alice"]);
    let roots = https.wait_served(&[https.name("alice")]);
    // Declared while serving: no restart.
    let output = https.server.ten(&["spawn", "notes:carol"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let carol = https.name("carol");
    https.wait_served(std::slice::from_ref(&carol));
    let answer = curl_https(&roots, &carol, https.https_port, "/", &[]).unwrap();
    assert!(answer.ends_with("200 2"), "{answer}");
    // Undeclared names: the handshake fails at once, and pebble gets no order.
    let orders = https.pebble.orders();
    for name in [
        https.name("mallory"),
        format!("mallory.{DOMAIN}"),
        "example.org".into(),
    ] {
        let refused = curl_https(&roots, &name, https.https_port, "/", &[]);
        assert!(refused.is_err(), "{name}: {refused:?}");
    }
    assert_eq!(https.pebble.orders(), orders, "{}", https.pebble.log());
    assert_eq!(https.pebble.validations_for(&https.name("mallory")), 0);
    let certs = https.certs();
    assert!(
        !certs.names.iter().any(|view| view.name.contains("mallory")),
        "{certs:#?}"
    );
    // Operators see it in the metrics: every declared name valid, three handshakes refused.
    let metrics = https.metrics();
    assert!(
        metrics.contains("ten_tls_unknown_names_total 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ten_certificates{state=\"valid\"} 4\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ten_acme_orders_total{result=\"issued\"} 4\n"),
        "{metrics}"
    );
}

#[test]
fn a_restarted_ten_reuses_its_certificates_without_a_new_order() {
    let mut https = serve_https(&["alice", "bob"]);
    let names = [https.name("alice"), https.name("bob")];
    https.wait_served(&names);
    let orders = https.pebble.orders();
    assert!(orders >= 2, "{}", https.pebble.log());
    https.server.stop();
    let store = https.dir.path().join("tenement-data/acme");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&store).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "{}", store.display());
    https.server = TestServer::start(https.dir.path());
    https.wait_served(&names);
    let certs = https.certs();
    for name in &names {
        let view = certs.names.iter().find(|view| &view.name == name).unwrap();
        assert_eq!((view.state, view.orders), (CertState::Valid, 0), "{view:?}");
    }
    assert_eq!(https.pebble.orders(), orders, "{}", https.pebble.log());
}

#[test]
fn an_order_cut_off_by_the_acme_server_stopping_is_tried_again_until_it_answers() {
    let mut https = serve_https(&["alice"]);
    // ten orders as soon as it serves, and an order takes a second at least (the first look
    // at the authorization is a second after the challenge): stopped now, pebble is gone
    // in the middle of it.
    https.pebble.stop();
    let name = https.name("alice");
    let failing = within(ISSUE_TIMEOUT, || {
        https.certs().names.iter().any(|view| {
            view.name == name && view.state == CertState::Retrying && view.failures >= 2
        })
    });
    assert!(failing, "{:#?}\n{}", https.certs(), https.server.log());
    https.pebble.start_again();
    https.wait_served(std::slice::from_ref(&name));
    let view = https
        .certs()
        .names
        .into_iter()
        .find(|view| view.name == name)
        .unwrap();
    assert_eq!(
        (view.state, view.failures, view.last_error),
        (CertState::Valid, 0, None)
    );
    assert!(
        https
            .server
            .log()
            .contains(&format!("certificate for {name} issued"))
    );
}

#[test]
fn a_certificate_is_renewed_at_two_thirds_of_its_lifetime_and_an_undeclared_one_is_kept_unrenewed()
{
    // Certificates valid for 24 s: renewed 16 s after they begin.
    let https = serve_https_with_validity(&["alice"], Some(24));
    let output = https.server.ten(&["spawn", "notes:bob"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (alice, bob) = (https.name("alice"), https.name("bob"));
    https.wait_served(&[alice.clone(), bob.clone()]);
    let view = |name: &str| {
        https
            .certs()
            .names
            .into_iter()
            .find(|view| view.name == name)
            .unwrap()
    };
    let first = view(&alice).certificate.unwrap();
    let bobs = view(&bob).certificate.unwrap();
    // bob is undeclared: its certificate stays in the store, is not renewed, is not served.
    let output = https.server.ten(&["rm", "notes:bob"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let renewed = within(Duration::from_secs(60), || {
        view(&alice)
            .certificate
            .is_some_and(|facts| facts.not_before_unix > first.not_before_unix)
    });
    assert!(renewed, "{:#?}\n{}", https.certs(), https.server.log());
    let facts = view(&alice).certificate.unwrap();
    assert!(
        facts.not_before_unix >= first.renew_at_unix() - 1,
        "renewed at {} for a certificate to renew at {}",
        facts.not_before_unix,
        first.renew_at_unix()
    );
    assert!(
        https
            .server
            .log()
            .contains(&format!("certificate for {alice} renewed"))
    );
    // Proves that something does not happen, so it waits: past the time bob's certificate
    // would have been renewed at, nothing was ordered for it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let past_renewal = bobs.renew_at_unix() + 3 - now;
    std::thread::sleep(Duration::from_secs(past_renewal.max(0) as u64));
    let bob_view = view(&bob);
    assert_eq!(
        (bob_view.state, bob_view.orders),
        (CertState::Undeclared, 1),
        "{bob_view:?}"
    );
    assert_eq!(
        https.pebble.validations_for(&bob),
        1,
        "{}",
        https.pebble.log()
    );
    let stored = std::fs::read_dir(https.dir.path().join("tenement-data/acme"))
        .unwrap()
        .flatten()
        .any(|account| account.path().join(format!("{bob}.pem")).exists());
    assert!(stored, "bob's certificate is kept in the store");
    let roots = https.pebble.issuing_roots();
    assert!(curl_https(&roots, &bob, https.https_port, "/", &[]).is_err());
}
