//! Benchmark of HTTPS: ten terminating TLS against nginx terminating TLS with the same
//! certificate, both proxying to the same backend process, at 1, 16 and 64 connections:
//!
//! 1. keep-alive: wrk over HTTPS, requests/s, p50/p99 latency, and the CPU time (user and
//!    system, of the proxy's processes, from `/proc/PID/stat`) per request;
//! 2. a new connection per request, its session resumed: wrk with `Connection: close`, which
//!    both servers answer and then close; wrk connects again and resumes its last TLS 1.3
//!    session (a ticket, with an X25519 exchange: no certificate, no signature), so the rate
//!    is one of resumed handshakes. wrk's latency starts once the handshake is done;
//! 3. a new connection per request, each a full handshake (X25519 and the certificate's
//!    ECDSA P-256 signature): the bench's own client (`https/client.rs`), since wrk always
//!    resumes; its latency runs from the connect to the answer's end.
//!
//! In modes 2 and 3 each request is a handshake: requests/s is handshakes/s, and the CPU time
//! per request is the CPU time per handshake (with its request). The TCP connections the
//! machine accepted over each run, per request, are shown beside (`conns/req`): 1 when every
//! request had its own connection.
//!
//! Setup: pebble (`tests/support/pebble.rs`) as the ACME server; ten with `[settings.tls]`
//! pointing at it and one tenant, `web:a` (the backend of `bench/proxy.rs`, quiet), served as
//! `a.web.example.test`; once its certificate is served, nginx gets the same certificate and
//! key (read from ten's store, `{data_dir}/acme/<account>/<name>.pem`: the key, then the
//! chain). nginx and nginx-2 (the control, set up exactly alike) are set up as ten is: TLS 1.2
//! and 1.3, session tickets on (ten's rustls sends two TLS 1.3 tickets per full handshake;
//! OpenSSL does too), h2 and http/1.1 by ALPN (the clients offer no ALPN: HTTP/1.1), a
//! handshake with an undeclared name refused, keep-alive connections to the backend, the same
//! headers to it, a worker per core (`NGINX_WORKERS=1` for one). The three take turns, as in
//! `bench/proxy.rs`: 12 rounds of 3 s per connection count and mode, and ten and nginx-2 are
//! compared with nginx round by round.
//!
//! The clients connect to 127.0.0.1 and send the tenant's name as SNI and Host: wrk through a
//! Lua script that resolves every host to 127.0.0.1 (`/etc/hosts` is not touched).
//!
//! Run with `cargo bench --bench https` (about 17 minutes). Installs `wrk`, `nginx`, `pebble`,
//! `curl` and `openssl` (Debian) when missing. `HTTPS_BENCH_ROUNDS` and `HTTPS_BENCH_SECONDS`
//! shorten it.

#[path = "https/client.rs"]
mod client;
#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cpu::{tcp_passive_opens, with_children};
use common::nginx::{Nginx, keepalive_requests};
use common::report::{print_ratios, print_runs_header, print_runs_line};
use common::stats::{Rounds, Run, median_of, medians};
use support::pebble::{Pebble, free_port};
use support::server::{TestServer, backend_service, project, within};

const DOMAIN: &str = "example.test";
/// The tenant's name, `ID.SERVICE.DOMAIN`.
const NAME: &str = "a.web.example.test";
const CONNECTIONS: [u32; 3] = [1, 16, 64];
/// How long a certificate may take: a handful of round trips to pebble.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(60);
/// Makes wrk connect to 127.0.0.1 whatever the URL's host, which stays its SNI and Host.
const RESOLVE_SCRIPT: &str = "wrk.resolve = function(host, service)\n  \
                              wrk.addrs = wrk.lookup(\"127.0.0.1\", service)\nend\n";

/// Seconds per run (`HTTPS_BENCH_SECONDS`, 3).
fn seconds() -> u32 {
    env_number("HTTPS_BENCH_SECONDS", 3)
}

/// Rounds per connection count and mode (`HTTPS_BENCH_ROUNDS`, 12: each order of the three
/// proxies twice).
fn rounds() -> usize {
    env_number("HTTPS_BENCH_ROUNDS", 12)
}

/// nginx's workers (`NGINX_WORKERS`): by default as many as ten's proxy workers, one per core.
fn nginx_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
    env_number("NGINX_WORKERS", cores)
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    KeepAlive,
    Resumed,
    Full,
}

impl Mode {
    fn title(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive: wrk over HTTPS, HTTP/1.1",
            Mode::Resumed => {
                "a new connection per request, its TLS session resumed: wrk with \
                 `Connection: close` (latency from the request, after the handshake)"
            }
            Mode::Full => {
                "a new connection per request, a full TLS handshake each: the bench's client \
                 (latency from the connect to the answer's end)"
            }
        }
    }

    fn rate(self) -> &'static str {
        match self {
            Mode::KeepAlive => "requests/s",
            Mode::Resumed | Mode::Full => "handshakes/s",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Mode::KeepAlive => "request",
            Mode::Resumed | Mode::Full => "handshake",
        }
    }
}

/// ten and the two nginx, serving HTTPS for [`NAME`] with one certificate. The fields are
/// dropped in order: the two nginx, ten (which stops its tenant; the guard then kills the
/// tenant's process group), pebble.
struct Proxies {
    _nginx: [Nginx; 2],
    /// HTTPS ports: ten, nginx, nginx-2.
    ports: [u16; 3],
    /// Processes whose CPU time is counted: ten's own (not its tenant), each nginx's master
    /// and workers.
    processes: [Vec<u32>; 3],
    backend_pid: u32,
    wrk_script: PathBuf,
    client: client::Client,
    /// The certificate's chain, the PEM file nginx serves.
    chain: PathBuf,
    nginx_dirs: [tempfile::TempDir; 2],
    server: TestServer,
    _project: tempfile::TempDir,
    pebble: Pebble,
}

fn tls_settings(pebble: &Pebble, https_port: u16, http_port: u16) -> String {
    format!(
        "[settings.tls]\nenabled = true\ndomain = \"{DOMAIN}\"\nacme_email = \"ops@{DOMAIN}\"\n\
         acme_directory = \"{}\"\nacme_root = \"{}\"\nhttps_port = {https_port}\nhttp_port = {http_port}\n",
        pebble.directory_url(),
        pebble.server_ca().display()
    )
}

/// curl's answer to `https://NAME:PORT/PATH` at 127.0.0.1, the certificate verified against
/// `roots`; or its error.
fn curl(roots: &Path, port: u16, path: &str) -> Result<String, String> {
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "--cacert"])
        .arg(roots)
        .arg("--resolve")
        .arg(format!("{NAME}:{port}:127.0.0.1"))
        .arg(format!("https://{NAME}:{port}{path}"))
        .output()
        .expect("run curl");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The PEM blocks of `text`, in order.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(line);
            block.push('\n');
        }
        if line.starts_with("-----END ") {
            blocks.extend(current.take());
        }
    }
    blocks
}

/// ten's certificate for [`NAME`], split for nginx: (private key, chain), PEM.
fn stored_certificate(data_dir: &Path) -> (String, String) {
    let store = data_dir.join("acme");
    let mut found = None;
    within(Duration::from_secs(10), || {
        found = fs::read_dir(&store)
            .into_iter()
            .flatten()
            .flatten()
            .map(|account| account.path().join(format!("{NAME}.pem")))
            .find(|path| path.exists());
        found.is_some()
    });
    let path = found.unwrap_or_else(|| panic!("no {NAME}.pem under {}", store.display()));
    let blocks = pem_blocks(&fs::read_to_string(&path).unwrap());
    let (keys, certificates): (Vec<String>, Vec<String>) = blocks
        .into_iter()
        .partition(|block| block.contains("PRIVATE KEY-----"));
    assert!(
        keys.len() == 1 && !certificates.is_empty(),
        "{}: expected a key, then a chain",
        path.display()
    );
    (keys.concat(), certificates.concat())
}

/// nginx set up as ten is for HTTPS: routed by `server_name` (the SNI, then the Host), a
/// handshake for any other name refused, keep-alive connections to the backend, the same
/// headers to it (Host, X-Forwarded-For, -Proto and -Host).
fn start_nginx(dir: &Path, listen: u16, backend: u16, key: &str, chain: &str) -> Nginx {
    fs::write(dir.join("key.pem"), key).unwrap();
    fs::write(dir.join("chain.pem"), chain).unwrap();
    let config = format!(
        "worker_processes {workers};\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\ndaemon off;\n\
events {{ worker_connections 4096; }}\n\
http {{\n  access_log off;\n  keepalive_requests {requests};\n\
  ssl_protocols TLSv1.2 TLSv1.3;\n  ssl_session_tickets on;\n\
  upstream tenant {{ server 127.0.0.1:{backend}; keepalive 128; keepalive_requests {requests}; }}\n\
  server {{\n    listen 127.0.0.1:{listen} ssl http2;\n    server_name {NAME};\n\
    ssl_certificate {dir}/chain.pem;\n    ssl_certificate_key {dir}/key.pem;\n\
    location / {{ proxy_pass http://tenant; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $host; \
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; \
proxy_set_header X-Forwarded-Host $host; }}\n  }}\n\
  server {{ listen 127.0.0.1:{listen} ssl http2 default_server; ssl_reject_handshake on; }}\n}}\n",
        workers = nginx_workers(),
        dir = dir.display(),
        requests = keepalive_requests(),
    );
    common::nginx::start(dir, &config, listen)
}

/// pebble, ten serving HTTPS for [`NAME`] once its certificate is served, and the two nginx
/// with that certificate.
fn start() -> Proxies {
    let (https_port, http_port) = (free_port(), free_port());
    let pebble = Pebble::start(https_port);
    // The backend does not log each request: this measures the proxies, not ten's capture of
    // tenant output.
    let service = backend_service("web", "").replace("/backend\"", "/backend --quiet\"");
    let project = project(
        &tls_settings(&pebble, https_port, http_port),
        &service,
        &[("instances/web/a.toml", "")],
    );
    let server = TestServer::start(project.path());
    server.wait_running("web:a");
    let backend = server.instance("web:a").unwrap();
    let (backend_port, backend_pid) = (backend.port.unwrap(), backend.pid.unwrap());
    let roots = pebble.issuing_roots();
    let served = within(ISSUE_TIMEOUT, || curl(&roots, https_port, "/").is_ok());
    assert!(
        served,
        "no certificate for {NAME} in time: {:?}\nten's log:\n{}\n{}",
        curl(&roots, https_port, "/"),
        server.log(),
        pebble.log()
    );
    let (key, chain) = stored_certificate(&project.path().join("tenement-data"));
    let nginx_dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let nginx_ports = [free_port(), free_port()];
    let nginx = [0, 1].map(|i| {
        start_nginx(
            nginx_dirs[i].path(),
            nginx_ports[i],
            backend_port,
            &key,
            &chain,
        )
    });
    let wrk_script = nginx_dirs[0].path().join("resolve.lua");
    fs::write(&wrk_script, RESOLVE_SCRIPT).unwrap();
    Proxies {
        ports: [https_port, nginx_ports[0], nginx_ports[1]],
        processes: [
            vec![server.pid()],
            with_children(nginx[0].0.id()),
            with_children(nginx[1].0.id()),
        ],
        chain: nginx_dirs[0].path().join("chain.pem"),
        _nginx: nginx,
        backend_pid,
        wrk_script,
        client: client::Client::new(NAME),
        nginx_dirs,
        server,
        _project: project,
        pebble,
    }
}

/// What OpenSSL's client (wrk's) gets from `port`: protocol, cipher suite, key exchange, the
/// number of session tickets, whether the session resumes, and the leaf certificate (PEM).
fn openssl_view(port: u16, dir: &Path) -> (String, String) {
    let session = dir.join(format!("session-{port}.pem"));
    let s_client = |session_flag: &str| {
        let mut child = Command::new("timeout")
            .args([
                "10",
                "openssl",
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["-servername", NAME, "-ign_eof", session_flag])
            .arg(&session)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run openssl s_client");
        use std::io::Write;
        let request = format!("GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n");
        let _ = child.stdin.take().unwrap().write_all(request.as_bytes());
        let output = child.wait_with_output().expect("openssl s_client");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let first = s_client("-sess_out");
    let second = s_client("-sess_in");
    let line_with = |text: &str, needle: &str| {
        text.lines()
            .find(|line| line.contains(needle))
            .map_or_else(|| format!("(no {needle})"), |line| line.trim().to_string())
    };
    let tickets = first
        .matches("Post-Handshake New Session Ticket arrived")
        .count();
    let view = format!(
        "{}; {}; {tickets} tickets; again with a ticket: {}",
        line_with(&first, ", Cipher is "),
        line_with(&first, "Server Temp Key"),
        line_with(&second, ", Cipher is ")
    );
    let leaf = pem_blocks(&first).into_iter().next().unwrap_or_default();
    (view, leaf)
}

impl Proxies {
    /// Checks that the three serve the tenant with the same certificate, and says what TLS
    /// each client gets from each.
    fn check(&self) {
        let roots = self.pebble.issuing_roots();
        let chain = fs::read_to_string(&self.chain).unwrap();
        let stored_leaf = pem_blocks(&chain).into_iter().next().unwrap();
        let dir = self.nginx_dirs[0].path();
        for (name, port) in ["ten", "nginx", "nginx-2"].into_iter().zip(self.ports) {
            let answer = curl(&roots, port, "/").unwrap_or_else(|error| {
                panic!("{name}: {error}\nten's log:\n{}", self.server.log())
            });
            assert!(!answer.is_empty(), "{name}: an empty answer");
            let (view, leaf) = openssl_view(port, dir);
            let bare = |pem: &str| pem.split_whitespace().collect::<String>();
            assert_eq!(
                bare(&leaf),
                bare(&stored_leaf),
                "{name} serves another certificate"
            );
            println!("   {name:<7} wrk's OpenSSL: {view}");
            println!(
                "   {name:<7} the full-handshake client: {}",
                self.client.negotiated(port)
            );
        }
    }

    /// One run of `mode` against target `target` (0 ten, 1 nginx, 2 nginx-2), with the
    /// proxy's CPU time, and the TCP connections accepted per request over it.
    fn measure(&self, mode: Mode, target: usize, connections: u32) -> (Run, f64) {
        let port = self.ports[target];
        let seconds = seconds();
        let opens = tcp_passive_opens();
        let run = common::cpu::measure(seconds, &self.processes[target], || {
            if mode == Mode::Full {
                let load = self.client.load(port, connections, seconds);
                return (load.rate, load.p50_ms, load.p99_ms);
            }
            let mut args = vec![
                format!("-t{}", common::wrk::threads(connections)),
                format!("-c{connections}"),
                format!("-d{seconds}s"),
                "--latency".into(),
                "-s".into(),
                self.wrk_script.display().to_string(),
            ];
            if mode == Mode::Resumed {
                args.extend(["-H".into(), "Connection: close".into()]);
            }
            args.push(format!("https://{NAME}:{port}/"));
            common::wrk::run(&args)
        });
        let opened = tcp_passive_opens() - opens;
        (run, opened as f64 / (run.rps * f64::from(seconds)))
    }
}

fn bench(proxies: &Proxies, mode: Mode, number: usize) {
    let rounds = rounds();
    println!(
        "{number}. {}; {} s per run, median of {rounds} rounds",
        mode.title(),
        seconds()
    );
    println!(
        "   CPU: the proxy's processes, in µs per {}, user and system; conns/req: TCP \
         connections accepted on this machine per request",
        mode.unit()
    );
    print_runs_header(mode.rate(), "  conns/req");
    let mut by_round = Vec::new();
    for connections in CONNECTIONS {
        let runs = common::take_turns(rounds, |target| proxies.measure(mode, target, connections));
        let [ten, nginx, control] =
            runs.map(|runs| runs.into_iter().unzip::<_, _, Vec<_>, Vec<_>>());
        by_round.push((
            connections,
            Rounds::new(&ten.0, &nginx.0),
            Rounds::new(&control.0, &nginx.0),
        ));
        let nginx_median = medians(&nginx.0);
        for (name, (runs, opened)) in [("ten", &ten), ("nginx", &nginx), ("nginx-2", &control)] {
            let opened = format!("  {:>9.2}", median_of(opened.clone()));
            print_runs_line(name, connections, &medians(runs), &nginx_median, &opened);
        }
    }
    print_ratios(&by_round, mode.unit());
}

fn main() {
    common::ensure_tools(&[
        ("wrk", "wrk"),
        ("nginx", "nginx"),
        ("pebble", "pebble"),
        ("curl", "curl"),
        ("openssl", "openssl"),
    ]);
    support::server::build_backend();
    let proxies = start();
    println!(
        "HTTPS: ten against nginx with the same certificate ({NAME}, from pebble), same backend \
         process (pid {}), nginx {} workers and keepalive_requests {}",
        proxies.backend_pid,
        nginx_workers(),
        keepalive_requests()
    );
    proxies.check();
    for (number, mode) in [Mode::KeepAlive, Mode::Resumed, Mode::Full]
        .into_iter()
        .enumerate()
    {
        bench(&proxies, mode, number + 1);
    }
}
