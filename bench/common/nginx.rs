//! nginx as the baseline proxy: started from a config, stopped with its workers when dropped.

use std::fs;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx, stopped with its workers when dropped: SIGTERM to the master (which ends its
/// workers), then SIGKILL to the whole process group if it lingers.
pub(crate) struct Nginx(pub Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// How many requests nginx serves on a connection before it closes it. ten never closes a
/// client's or a backend's connection after some number of requests; nginx does by default,
/// after 1000 (`keepalive_requests`, on both sides). A closed connection changes more than
/// the proxy: wrk connects again, and on a 2-CPU VM the scheduler often places wrk, proxy and
/// backend anew, sometimes all on one CPU, which at 1 connection is faster by up to 30% for
/// either proxy. So that both proxies serve the same load, nginx keeps its connections too.
pub(crate) fn keepalive_requests() -> u64 {
    std::env::var("NGINX_KEEPALIVE_REQUESTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000_000)
}

/// nginx with `config` (written to `dir/nginx.conf`, `dir` its prefix), once it accepts
/// connections on `listen`.
pub(crate) fn start(dir: &Path, config: &str, listen: u16) -> Nginx {
    let path = dir.join("nginx.conf");
    fs::write(&path, config).unwrap();
    let nginx = Nginx(
        Command::new("nginx")
            .args(["-c", path.to_str().unwrap(), "-p", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start nginx"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", listen)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nginx
}
