//! A real ACME server for integration tests: Debian's `pebble` (2.4), with
//! `pebble-challtestsrv` as its DNS server, all on 127.0.0.1 and cleaned up when dropped — both
//! processes and the temporary directory of their files, even when the test fails.
//!
//! Pebble validates TLS-ALPN-01 challenges by connecting to `127.0.0.1:tls_port`, the port the
//! caller gives (where ten serves HTTPS): the DNS server answers every A query with 127.0.0.1
//! and no AAAA query at all (pebble's VA asks for AAAA first and dials the first address it
//! gets, so a `::1` answer would send it past a server listening on 127.0.0.1 only).
//!
//! Pebble runs with no random sleeps before validations, no random bad-nonce rejections and no
//! reuse of valid authorizations, so every order is validated anew. Its output (and the DNS
//! server's) is kept in files: [`Pebble::orders`] and [`Pebble::issued`] count its log lines,
//! which are written before pebble answers the request that caused them.
//!
//! Pebble keeps everything in memory: after [`Pebble::stop`] and [`Pebble::start_again`] it
//! knows no account, order or certificate of the run before, and issues from a new root.
//!
//! Needs `pebble` (Debian package `pebble`), `curl` and `openssl` on PATH.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::dns::{RecordType, dns_query};

/// How long pebble and its DNS server get to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The log line pebble 2.4 prints for each new order it accepted (`wfe.NewOrder`).
const NEW_ORDER_LINE: &str = "Added order ";
/// The log line pebble 2.4 prints for each certificate it issued (`ca.CompleteOrder`).
const ISSUED_LINE: &str = "Issued certificate serial ";
/// The log line pebble 2.4 prints when its VA starts to validate a challenge; the task it prints
/// (Go's `%#v`) holds the identifier as `Value:"NAME"`.
const VALIDATION_LINE: &str = "Pulled a task from the Tasks queue";

/// A free TCP port on 127.0.0.1, chosen by the OS (bound to port 0, then released) and never
/// handed out twice in this process: for a server that a test starts afterwards.
pub(crate) fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        if claim(port) {
            return port;
        }
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (a DNS server listens on both).
fn free_dns_port() -> u16 {
    loop {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp 127.0.0.1:0");
        let port = socket.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && claim(port) {
            return port;
        }
    }
}

/// Whether `port` was not handed out before in this process (and now is).
fn claim(port: u16) -> bool {
    static CLAIMED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    CLAIMED.lock().unwrap().insert(port)
}

/// A running pebble and its DNS server.
pub(crate) struct Pebble {
    dir: tempfile::TempDir,
    server_ca: PathBuf,
    tls_port: u16,
    listen_port: u16,
    management_port: u16,
    dns_port: u16,
    /// How long the certificates it issues are valid, in seconds (`None`: pebble's five
    /// years).
    validity: Option<u64>,
    /// `None` between [`Pebble::stop`] and [`Pebble::start_again`].
    pebble: Option<Child>,
    challtestsrv: Child,
}

impl Pebble {
    /// Starts the DNS server, then pebble validating TLS-ALPN-01 on `127.0.0.1:tls_port`, and
    /// waits until pebble's directory and management interface answer.
    pub(crate) fn start(tls_port: u16) -> Pebble {
        Self::start_with_validity(tls_port, None)
    }

    /// As [`Pebble::start`], issuing certificates valid for `validity` seconds (to see them
    /// renewed).
    pub(crate) fn start_with_validity(tls_port: u16, validity: Option<u64>) -> Pebble {
        let dir = tempfile::Builder::new()
            .prefix("pebble-")
            .tempdir()
            .expect("make a temporary directory");
        write_server_certificate(dir.path());
        let dns_port = free_dns_port();
        let challtestsrv = start_challtestsrv(dir.path(), dns_port);
        let mut pebble = Pebble {
            server_ca: dir.path().join("server-ca.pem"),
            dir,
            tls_port,
            listen_port: free_port(),
            management_port: free_port(),
            dns_port,
            validity,
            pebble: None,
            challtestsrv,
        };
        pebble.wait_for_dns();
        pebble.write_config();
        pebble.launch();
        pebble
    }

    /// The ACME directory: `https://127.0.0.1:PORT/dir`.
    pub(crate) fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.listen_port)
    }

    /// The PEM file of the CA that signed the certificate of pebble's HTTPS listeners (for
    /// `127.0.0.1` and `localhost`): what an ACME client must trust to talk to the directory.
    pub(crate) fn server_ca(&self) -> &Path {
        &self.server_ca
    }

    /// The port pebble validates TLS-ALPN-01 challenges on (as given to [`Pebble::start`]).
    pub(crate) fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The DNS server pebble resolves names with (UDP and TCP).
    pub(crate) fn dns_server(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.dns_port))
    }

    /// Fetches the root certificate pebble issues from now (`/roots/0` of its management
    /// interface) into a PEM file for `curl --cacert`. Only the root: a certificate verifies
    /// against it when its server sends the intermediate too, as a server must. Each run of
    /// pebble has a new root; panics while pebble is stopped.
    pub(crate) fn issuing_roots(&self) -> PathBuf {
        assert!(self.is_running(), "pebble is stopped: it has no root");
        let url = format!("https://127.0.0.1:{}/roots/0", self.management_port);
        let root = curl(self.server_ca(), &url)
            .unwrap_or_else(|error| panic!("fetch {url}: {error}\n{}", self.log()));
        assert!(
            root.contains("-----BEGIN CERTIFICATE-----"),
            "{url} answered no certificate: {root}"
        );
        let path = self.path("issuing-roots.pem");
        fs::write(&path, root).unwrap();
        path
    }

    /// How many new orders pebble accepted, over all its runs.
    pub(crate) fn orders(&self) -> usize {
        self.count_log_lines(|line| line.contains(NEW_ORDER_LINE))
    }

    /// How many certificates pebble issued, over all its runs.
    pub(crate) fn issued(&self) -> usize {
        self.count_log_lines(|line| line.contains(ISSUED_LINE))
    }

    /// How many challenges for `name` pebble started to validate, over all its runs (one per
    /// challenge a client answered, however many connections the validation makes).
    pub(crate) fn validations_for(&self, name: &str) -> usize {
        let value = format!("Value:\"{name}\"");
        self.count_log_lines(|line| line.contains(VALIDATION_LINE) && line.contains(&value))
    }

    /// The addresses pebble's VA gets for `name` from the DNS server, in its order: AAAA
    /// records, then A records.
    pub(crate) fn resolve(&self, name: &str) -> Vec<IpAddr> {
        let mut addresses = Vec::new();
        for record_type in [RecordType::Aaaa, RecordType::A] {
            let answer = dns_query(self.dns_server(), name, record_type)
                .unwrap_or_else(|| panic!("no DNS answer for {name}\n{}", self.log()));
            addresses.extend(answer);
        }
        addresses
    }

    pub(crate) fn is_running(&self) -> bool {
        self.pebble.is_some()
    }

    /// Stops pebble (SIGKILL, like a crash) and waits for it; its ports stay reserved for
    /// [`Pebble::start_again`]. The DNS server keeps running.
    pub(crate) fn stop(&mut self) {
        let mut child = self.pebble.take().expect("pebble is already stopped");
        let _ = child.kill();
        child.wait().expect("wait for pebble");
    }

    /// Starts pebble again after [`Pebble::stop`], on the same ports with the same config, and
    /// waits until it answers. It starts empty: no account, order or certificate of before.
    pub(crate) fn start_again(&mut self) {
        assert!(!self.is_running(), "pebble is already running");
        let mut log = self.open_log("pebble.log");
        writeln!(log, "--- pebble started again ---").unwrap();
        self.launch();
    }

    /// The output of the DNS server and of every run of pebble, for failure messages.
    pub(crate) fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.path(name)).unwrap_or_default();
        format!(
            "pebble-challtestsrv output:\n{}\npebble output:\n{}",
            read("challtestsrv.log"),
            read("pebble.log")
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn open_log(&self, name: &str) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(name))
            .unwrap()
    }

    fn count_log_lines(&self, matches: impl Fn(&str) -> bool) -> usize {
        let log = fs::read_to_string(self.path("pebble.log")).unwrap_or_default();
        log.lines().filter(|line| matches(line)).count()
    }

    /// Waits until the DNS server answers a query.
    fn wait_for_dns(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while dns_query(self.dns_server(), "ready.pebble.test", RecordType::A).is_none() {
            if let Some(status) = self.challtestsrv.try_wait().unwrap() {
                panic!("pebble-challtestsrv exited ({status})\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("pebble-challtestsrv did not answer DNS\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pebble's config (the keys of its `config` struct, matched case-insensitively by Go).
    fn write_config(&self) {
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{}", self.listen_port),
                "managementListenAddress": format!("127.0.0.1:{}", self.management_port),
                "certificate": self.path("server.pem"),
                "privateKey": self.path("server.key"),
                "httpPort": free_port(),
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        if let Some(seconds) = self.validity {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        fs::write(
            self.path("pebble-config.json"),
            serde_json::to_string_pretty(&config).unwrap(),
        )
        .unwrap();
    }

    /// Spawns pebble with the config written and waits until it answers.
    fn launch(&mut self) {
        let log = self.open_log("pebble.log");
        let child = Command::new("pebble")
            .arg("-config")
            .arg(self.path("pebble-config.json"))
            .arg("-dnsserver")
            .arg(self.dns_server().to_string())
            .env_clear()
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start pebble (Debian package pebble)");
        self.pebble = Some(child);
        let directory = self.directory_url();
        let roots = format!("https://127.0.0.1:{}/roots/0", self.management_port);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let answered = |url: &str| curl(self.server_ca(), url).is_ok();
            if answered(&directory) && answered(&roots) {
                return;
            }
            if let Some(status) = self.pebble.as_mut().unwrap().try_wait().unwrap() {
                self.pebble = None;
                panic!("pebble exited ({status})\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("pebble did not answer at {directory}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in self.pebble.iter_mut().chain([&mut self.challtestsrv]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the DNS server on `127.0.0.1:dns_port` (UDP and TCP), answering every A query with
/// 127.0.0.1 and no AAAA query, its challenge servers off and its management port on loopback.
fn start_challtestsrv(dir: &Path, dns_port: u16) -> Child {
    let log = File::create(dir.join("challtestsrv.log")).unwrap();
    Command::new("pebble-challtestsrv")
        .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-management", &format!("127.0.0.1:{}", free_port())])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start pebble-challtestsrv (Debian package pebble)")
}

/// Writes the certificate of pebble's HTTPS listeners: a CA (`server-ca.pem`) and a
/// certificate it signed for 127.0.0.1 and localhost (`server.pem`, `server.key`), EC P-256,
/// valid for a day. Not a self-signed leaf: some TLS clients refuse a CA certificate as a
/// server's, and a leaf as a trust anchor.
fn write_server_certificate(dir: &Path) {
    let config = dir.join("openssl.cnf");
    fs::write(
        &config,
        "[req]\n\
         distinguished_name = dn\n\
         prompt = no\n\
         [dn]\n\
         CN = pebble\n\
         [ca]\n\
         basicConstraints = critical, CA:TRUE\n\
         keyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\n\
         [server]\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1, DNS:localhost\n\
         authorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    let request = |extensions: &str, subject: &str, name: &str| {
        let mut command = Command::new("openssl");
        command
            .current_dir(dir)
            .args(["req", "-x509", "-config"])
            .arg(&config)
            .args(["-extensions", extensions, "-subj", subject])
            .args([
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-days", "1", "-keyout", &format!("{name}.key")])
            .args(["-out", &format!("{name}.pem")]);
        command
    };
    let mut ca = request("ca", "/CN=ten test pebble CA", "server-ca");
    run(&mut ca);
    let mut server = request("server", "/CN=localhost", "server");
    server.args(["-CA", "server-ca.pem", "-CAkey", "server-ca.key"]);
    run(&mut server);
}

/// Runs `command` to success, or panics with its output.
fn run(command: &mut Command) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// GETs `url` with curl, trusting `ca` only: the body, or curl's error.
pub(crate) fn curl(ca: &Path, url: &str) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--noproxy", "*"])
        .args(["--max-time", "10", "--cacert"])
        .arg(ca)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("run curl: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}
