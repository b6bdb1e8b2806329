//! The ACME test server itself (`tests/support/pebble.rs`): pebble answers over HTTPS trusted
//! through its own CA, its DNS server sends every name to 127.0.0.1 and IPv4 only, it stops and
//! starts again on the same port, and — driven by a tiny ACME client made of curl and openssl,
//! with `openssl s_server` answering the TLS-ALPN-01 challenge on the port given to the
//! harness, where ten will serve — it issues a certificate that verifies against the issuing
//! root the harness fetches, while the harness counts the order, the validation and the
//! certificate. Needs pebble, curl and openssl (installed by `.ci/run`).

mod support;

use std::fs;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::dns::{RecordType, dns_query};
use support::pebble::{Pebble, curl, free_port};

const NAME: &str = "alice.notes.example.test";

#[test]
fn directory_is_served_over_https_trusted_through_the_server_ca() {
    let pebble = Pebble::start(free_port());
    let url = pebble.directory_url();
    assert!(
        url.starts_with("https://127.0.0.1:") && url.ends_with("/dir"),
        "{url}"
    );
    let body = curl(pebble.server_ca(), &url).unwrap_or_else(|error| panic!("{error}"));
    let directory: Value = serde_json::from_str(&body).unwrap();
    let base = url.trim_end_matches("/dir");
    for resource in ["newNonce", "newAccount", "newOrder", "revokeCert"] {
        let endpoint = directory[resource].as_str().unwrap_or_default();
        assert!(endpoint.starts_with(base), "{resource}: {body}");
    }
    // Trusting another CA (pebble's issuing root), curl refuses it (exit 60: bad certificate).
    let untrusted = Command::new("curl")
        .args(["--silent", "--noproxy", "*", "--cacert"])
        .arg(pebble.issuing_roots())
        .arg(&url)
        .status()
        .unwrap();
    assert_eq!(untrusted.code(), Some(60));
    assert_eq!((pebble.orders(), pebble.issued()), (0, 0));
}

#[test]
fn the_issuing_root_is_pebbles_self_signed_root() {
    let pebble = Pebble::start(free_port());
    let roots = pebble.issuing_roots();
    let pem = fs::read_to_string(&roots).unwrap();
    assert_eq!(
        pem.matches("-----BEGIN CERTIFICATE-----").count(),
        1,
        "{pem}"
    );
    let names = openssl(&["x509", "-noout", "-subject", "-issuer", "-in"], &roots);
    let subject = names.lines().find_map(|line| line.strip_prefix("subject="));
    let issuer = names.lines().find_map(|line| line.strip_prefix("issuer="));
    assert!(
        subject.is_some_and(|subject| subject.contains("Pebble Root CA")),
        "{names}"
    );
    assert_eq!(subject, issuer);
}

#[test]
fn stopped_pebble_refuses_and_starts_again_on_the_same_port_with_a_new_root() {
    let mut pebble = Pebble::start(free_port());
    let url = pebble.directory_url();
    let first_root = fs::read_to_string(pebble.issuing_roots()).unwrap();
    pebble.stop();
    assert!(!pebble.is_running());
    let refused = curl(pebble.server_ca(), &url).unwrap_err();
    assert!(refused.contains("Couldn't connect"), "{refused}");
    pebble.start_again();
    assert_eq!(pebble.directory_url(), url);
    curl(pebble.server_ca(), &url).unwrap_or_else(|error| panic!("{error}"));
    let second_root = fs::read_to_string(pebble.issuing_roots()).unwrap();
    assert_ne!(first_root, second_root);
    let log = pebble.log();
    assert_eq!(
        log.matches("Starting Pebble ACME server").count(),
        2,
        "{log}"
    );
}

#[test]
fn the_dns_server_sends_every_name_to_127_0_0_1_and_has_no_ipv6() {
    let pebble = Pebble::start(free_port());
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for name in [NAME, "bob.example.test", "localhost"] {
        let a = dns_query(pebble.dns_server(), name, RecordType::A);
        assert_eq!(a, Some(vec![loopback]), "A {name}");
        let aaaa = dns_query(pebble.dns_server(), name, RecordType::Aaaa);
        assert_eq!(aaaa, Some(vec![]), "AAAA {name}");
        assert_eq!(pebble.resolve(name), vec![loopback]);
    }
}

#[test]
fn a_tls_alpn_01_order_is_validated_on_the_given_port_issued_and_counted() {
    let tls_port = free_port();
    let pebble = Pebble::start(tls_port);
    assert_eq!(pebble.tls_port(), tls_port);
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::new(&pebble, dir.path());
    client.register();
    let (order_url, order) = client.new_order(NAME);
    assert_eq!(pebble.orders(), 1, "{}", pebble.log());

    let authorization_url = order["authorizations"][0].as_str().unwrap().to_string();
    let authorization = client.post(&authorization_url, None).json();
    let challenge = authorization["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|challenge| challenge["type"] == "tls-alpn-01")
        .unwrap_or_else(|| panic!("no tls-alpn-01 challenge: {authorization}"));
    let token = challenge["token"].as_str().unwrap();
    let responder = Responder::start(dir.path(), tls_port, NAME, &client.key_authorization(token));
    let answered = client.post(challenge["url"].as_str().unwrap(), Some(&json!({})));
    assert_eq!(answered.status, 200, "{}", answered.body);
    let authorization = client.poll(&authorization_url);
    assert_eq!(
        authorization["status"],
        "valid",
        "{authorization}\n{}\ns_server: {}",
        pebble.log(),
        responder.log()
    );
    assert_eq!(pebble.validations_for(NAME), 1);
    assert_eq!(pebble.validations_for("bob.example.test"), 0);
    drop(responder);

    let csr = openssl_request(dir.path(), NAME, &["-new", "-outform", "DER"], "domain");
    let finalize = json!({ "csr": base64url(&fs::read(csr).unwrap()) });
    let finalized = client.post(order["finalize"].as_str().unwrap(), Some(&finalize));
    assert_eq!(finalized.status, 200, "{}", finalized.body);
    let order = client.poll(&order_url);
    assert_eq!(order["status"], "valid", "{order}\n{}", pebble.log());
    let chain = client
        .post(order["certificate"].as_str().unwrap(), None)
        .body;
    assert_eq!(pebble.issued(), 1, "{}", pebble.log());
    assert_eq!(pebble.orders(), 1);

    // The chain (leaf, intermediate) verifies against the root only, not the server's CA.
    assert_eq!(
        chain.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{chain}"
    );
    let chain_file = dir.path().join("chain.pem");
    fs::write(&chain_file, &chain).unwrap();
    let verify = |ca: &Path| {
        Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(ca)
            .arg("-untrusted")
            .args([&chain_file, &chain_file])
            .output()
            .unwrap()
    };
    let verified = verify(&pebble.issuing_roots());
    assert!(verified.status.success(), "{verified:?}");
    assert!(!verify(pebble.server_ca()).status.success());
    let names = openssl(
        &["x509", "-noout", "-ext", "subjectAltName", "-in"],
        &chain_file,
    );
    assert!(names.contains(&format!("DNS:{NAME}")), "{names}");
}

#[test]
fn after_start_again_pebble_knows_no_account_and_orders_are_counted_over_both_runs() {
    let mut pebble = Pebble::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::new(&pebble, dir.path());
    client.register();
    client.new_order(NAME);
    pebble.stop();
    pebble.start_again();
    assert_eq!(pebble.orders(), 1);

    let identifiers = json!({ "identifiers": [{ "type": "dns", "value": NAME }] });
    let refused = client.post(&client.resource("newOrder"), Some(&identifiers));
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(
        refused.json()["type"],
        "urn:ietf:params:acme:error:accountDoesNotExist"
    );
    assert_eq!(pebble.orders(), 1);
    client.register();
    client.new_order(NAME);
    assert_eq!(pebble.orders(), 2, "{}", pebble.log());
}

/// A tiny ACME client (RFC 8555) over curl, signing with an EC P-256 account key through
/// openssl: enough to drive pebble through an order.
struct Client {
    /// What signed pebble's HTTPS certificate.
    server_ca: PathBuf,
    key: PathBuf,
    /// The public key as a JWK: `{"crv", "kty", "x", "y"}`, members in lexical order.
    jwk: Value,
    directory: Value,
    account_url: Option<String>,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {}", self.body))
    }
}

impl Client {
    fn new(pebble: &Pebble, dir: &Path) -> Client {
        let key = dir.join("account.key");
        let generate = [
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ];
        openssl(&[&generate[..], &["-out"]].concat(), &key);
        let public = Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&key)
            .output()
            .unwrap()
            .stdout;
        // The DER of a P-256 public key ends with the uncompressed point 04 || x || y.
        let point = &public[public.len() - 65..];
        assert_eq!(point[0], 4);
        let jwk = json!({
            "crv": "P-256",
            "kty": "EC",
            "x": base64url(&point[1..33]),
            "y": base64url(&point[33..]),
        });
        let directory = curl(pebble.server_ca(), &pebble.directory_url()).unwrap();
        Client {
            server_ca: pebble.server_ca().to_path_buf(),
            key,
            jwk,
            directory: serde_json::from_str(&directory).unwrap(),
            account_url: None,
        }
    }

    fn resource(&self, name: &str) -> String {
        self.directory[name].as_str().unwrap().to_string()
    }

    /// A new account for this key (again, when pebble forgot it).
    fn register(&mut self) {
        self.account_url = None;
        let terms = json!({ "termsOfServiceAgreed": true });
        let response = self.post(&self.resource("newAccount"), Some(&terms));
        assert_eq!(response.status, 201, "{}", response.body);
        self.account_url = Some(response.header("Location").unwrap().to_string());
    }

    /// A new order for `name`: its URL and body.
    fn new_order(&self, name: &str) -> (String, Value) {
        let identifiers = json!({ "identifiers": [{ "type": "dns", "value": name }] });
        let response = self.post(&self.resource("newOrder"), Some(&identifiers));
        assert_eq!(response.status, 201, "{}", response.body);
        let url = response.header("Location").unwrap().to_string();
        (url, response.json())
    }

    fn key_authorization(&self, token: &str) -> String {
        let thumbprint = Sha256::digest(self.jwk.to_string().as_bytes());
        format!("{token}.{}", base64url(&thumbprint))
    }

    /// POST-as-GET of `url` until its status is no longer pending or processing (20 s at
    /// most): its last body.
    fn poll(&self, url: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let body = self.post(url, None).json();
            let status = body["status"].as_str().unwrap_or_default();
            if !["pending", "processing"].contains(&status) || Instant::now() > deadline {
                return body;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A signed POST of `payload` (none: a POST-as-GET), with a fresh nonce; the account's
    /// URL as `kid` once registered, else the key itself.
    fn post(&self, url: &str, payload: Option<&Value>) -> Response {
        let nonce = self.send(&["--head"], &self.resource("newNonce"));
        let mut protected = json!({
            "alg": "ES256",
            "nonce": nonce.header("Replay-Nonce").unwrap(),
            "url": url,
        });
        match &self.account_url {
            Some(account_url) => protected["kid"] = json!(account_url),
            None => protected["jwk"] = self.jwk.clone(),
        }
        let protected = base64url(protected.to_string().as_bytes());
        let payload = payload.map_or(String::new(), |payload| {
            base64url(payload.to_string().as_bytes())
        });
        let signature = self.sign(format!("{protected}.{payload}").as_bytes());
        let body = json!({ "protected": protected, "payload": payload, "signature": signature });
        let header = "Content-Type: application/jose+json";
        self.send(&["-H", header, "--data-binary", &body.to_string()], url)
    }

    /// An ES256 signature: r || s, 32 bytes each, base64url.
    fn sign(&self, input: &[u8]) -> String {
        let input_file = tempfile::NamedTempFile::new().unwrap();
        fs::write(input_file.path(), input).unwrap();
        let output = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .arg(input_file.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        // DER: SEQUENCE { INTEGER r, INTEGER s }, short lengths for P-256.
        let der = output.stdout;
        let mut raw = Vec::new();
        let mut at = 2;
        for _ in 0..2 {
            assert_eq!(der[at], 2, "an INTEGER in {der:?}");
            let length = usize::from(der[at + 1]);
            let integer = &der[at + 2..at + 2 + length];
            let integer = &integer[integer.len().saturating_sub(32)..];
            raw.extend(std::iter::repeat_n(0, 32 - integer.len()));
            raw.extend(integer);
            at += 2 + length;
        }
        base64url(&raw)
    }

    fn send(&self, args: &[&str], url: &str) -> Response {
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--include", "--http1.1"])
            .args(["--noproxy", "*", "-H", "Expect:", "--cacert"])
            .arg(&self.server_ca)
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "curl {url}: {output:?}");
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|line| line.split(' ').nth(1));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_string(), value.trim().to_string()))
            .collect();
        Response {
            status: status.and_then(|code| code.parse().ok()).unwrap_or(0),
            headers,
            body: body.to_string(),
        }
    }
}

/// `openssl s_server` answering TLS-ALPN-01 for one name on 127.0.0.1:`port` (RFC 8737): a
/// certificate for the name alone, with the critical acmeIdentifier extension holding the
/// SHA-256 of the key authorization, offered under ALPN `acme-tls/1`.
struct Responder {
    child: Child,
    log: PathBuf,
}

impl Responder {
    fn start(dir: &Path, port: u16, name: &str, key_authorization: &str) -> Responder {
        let digest = Sha256::digest(key_authorization.as_bytes());
        let hex: Vec<String> = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        let acme_identifier = format!("1.3.6.1.5.5.7.1.31=critical,DER:04:20:{}", hex.join(":"));
        let certificate = openssl_request(
            dir,
            name,
            &["-x509", "-days", "1", "-addext", &acme_identifier],
            "challenge",
        );
        let log = dir.join("s_server.log");
        let child = Command::new("openssl")
            .args(["s_server", "-www", "-alpn", "acme-tls/1"])
            .args(["-accept", &format!("127.0.0.1:{port}"), "-cert"])
            .arg(&certificate)
            .arg("-key")
            .arg(dir.join("challenge.key"))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let responder = Responder { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s_server: {}", responder.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        responder
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl req` for `name` (subject and its only subjectAltName) with a new EC P-256 key
/// (`{file}.key`) and `args`: the path of what it wrote (`{file}.out`).
fn openssl_request(dir: &Path, name: &str, args: &[&str], file: &str) -> PathBuf {
    let config = dir.join("request.cnf");
    fs::write(&config, "[req]\ndistinguished_name = dn\n[dn]\n").unwrap();
    let out = dir.join(format!("{file}.out"));
    let output = Command::new("openssl")
        .arg("req")
        .args(args)
        .arg("-config")
        .arg(&config)
        .args([
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .arg("-keyout")
        .arg(dir.join(format!("{file}.key")))
        .arg("-out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "openssl req: {output:?}");
    out
}

/// `openssl ARGS PATH` to success: its standard output.
fn openssl(args: &[&str], path: &Path) -> String {
    let output = Command::new("openssl")
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "openssl {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Base64url without padding (RFC 7515).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let group = chunk.iter().enumerate().fold(0u32, |group, (index, byte)| {
            group | u32::from(*byte) << (16 - 8 * index)
        });
        for index in 0..=chunk.len() {
            text.push(char::from(
                ALPHABET[(group >> (18 - 6 * index) & 63) as usize],
            ));
        }
    }
    text
}
