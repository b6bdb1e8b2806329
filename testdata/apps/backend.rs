//! A tiny HTTP backend for ten's tests and benchmarks: a thread per connection, HTTP/1.1
//! keep-alive, the standard library only (plus tungstenite for the WebSocket echo). Listens
//! on 127.0.0.1:$PORT, or on $SOCKET_PATH with `--socket`.
//!
//!   GET  /health          200 "ok" (500 with `--unhealthy`)
//!   GET  /                200 "<name> <pid>"   (name: $NAME, else "backend")
//!   GET  /env             the environment, one NAME=value per line
//!   GET  /headers         the request's headers, one "name: value" per line
//!   GET  /slow?ms=N       answers after N ms
//!   POST /upload          reads the body (any size, streamed), answers its length
//!   POST /early           answers "early" at once, then reads the body (streamed)
//!   GET  /download?bytes=N  N bytes, streamed
//!   GET  /stats           "received=R sent=S": body bytes read by /upload, written by /download
//!   GET  /ws              WebSocket echo
//!   GET  /crash           exits at once, without answering
//!   GET  /hangup          closes the connection without answering (and keeps running)
//!   GET  /stop-ticks      stops the ticks of `--chatty` or `--stream`: the last N written
//!
//! Every request is logged on stdout ("GET /path"), unless `--quiet`. With `--chatty`, it
//! also prints "tick N" (N = 0, 1, 2, ...) every 5 ms, a line per write, until
//! `/stop-ticks`. `--stream` writes the same lines faster and cut anywhere: 256 bytes per
//! write, a write every millisecond (use it with `--quiet`, so no request line lands inside
//! a tick).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static RECEIVED: AtomicU64 = AtomicU64::new(0);
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static SENT: AtomicU64 = AtomicU64::new(0);

/// A connection of either kind.
trait Connection: Read + Write + Send + Sized + 'static {
    fn duplicate(&self) -> std::io::Result<Self>;
}

impl Connection for std::net::TcpStream {
    fn duplicate(&self) -> std::io::Result<Self> {
        let _ = self.set_nodelay(true);
        self.try_clone()
    }
}

impl Connection for std::os::unix::net::UnixStream {
    fn duplicate(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
}

/// The numbered lines of `--chatty` and `--stream`.
struct Ticks {
    /// stdout, written to directly: each write is exactly the bytes given.
    out: std::fs::File,
    next: u64,
    /// Lines made but not yet written (`--stream` writes them in fixed-size blocks).
    unwritten: Vec<u8>,
    stopped: bool,
}

static TICKS: Mutex<Option<Ticks>> = Mutex::new(None);
/// Memory asked for with `/alloc?mb=N`, kept (and touched) until the process ends.
static HELD: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// How ticks are written.
#[derive(Clone, Copy)]
enum Ticking {
    /// `--chatty`: a whole line every 5 ms.
    Lines,
    /// `--stream`: this many bytes every millisecond, lines cut anywhere.
    Blocks(usize),
}

/// Writes ticks from a thread of their own until `/stop-ticks`.
fn start_ticks(ticking: Ticking) {
    let out = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .expect("duplicate stdout");
    *TICKS.lock().unwrap() = Some(Ticks {
        out: out.into(),
        next: 0,
        unwritten: Vec::new(),
        stopped: false,
    });
    std::thread::spawn(move || {
        loop {
            {
                let mut guard = TICKS.lock().unwrap();
                let ticks = guard.as_mut().unwrap();
                if ticks.stopped {
                    return;
                }
                let written: Vec<u8> = match ticking {
                    Ticking::Lines => {
                        let line = format!("tick {}\n", ticks.next);
                        ticks.next += 1;
                        line.into_bytes()
                    }
                    Ticking::Blocks(size) => {
                        while ticks.unwritten.len() < size {
                            let line = format!("tick {}\n", ticks.next);
                            ticks.unwritten.extend_from_slice(line.as_bytes());
                            ticks.next += 1;
                        }
                        ticks.unwritten.drain(..size).collect()
                    }
                };
                ticks.out.write_all(&written).expect("write to stdout");
            }
            std::thread::sleep(match ticking {
                Ticking::Lines => Duration::from_millis(5),
                Ticking::Blocks(_) => Duration::from_millis(1),
            });
        }
    });
}

/// Stops the ticks after finishing the line under way; the last number written.
fn stop_ticks() -> Option<u64> {
    let mut guard = TICKS.lock().unwrap();
    let ticks = guard.as_mut()?;
    ticks.stopped = true;
    let rest = std::mem::take(&mut ticks.unwritten);
    ticks.out.write_all(&rest).expect("write to stdout");
    ticks.next.checked_sub(1)
}

fn main() {
    let unhealthy = std::env::args().any(|arg| arg == "--unhealthy");
    let ticking = if std::env::args().any(|arg| arg == "--stream") {
        Some(Ticking::Blocks(256))
    } else if std::env::args().any(|arg| arg == "--chatty") {
        Some(Ticking::Lines)
    } else {
        None
    };
    QUIET.store(
        std::env::args().any(|arg| arg == "--quiet"),
        Ordering::Relaxed,
    );
    if std::env::args().any(|arg| arg == "--socket") {
        let path = std::env::var("SOCKET_PATH").expect("SOCKET_PATH is set");
        let _ = std::fs::remove_file(&path);
        if let Some(dir) = std::path::Path::new(&path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let listener = UnixListener::bind(&path).expect("bind $SOCKET_PATH");
        println!("backend {} listening on {path}", std::process::id());
        if let Some(ticking) = ticking {
            start_ticks(ticking);
        }
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, unhealthy));
        }
    }
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .expect("PORT is set");
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1:$PORT");
    println!(
        "backend {} listening on 127.0.0.1:{port}",
        std::process::id()
    );
    if let Some(ticking) = ticking {
        start_ticks(ticking);
    }
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream, unhealthy));
    }
}

fn query_number(path: &str, name: &str) -> u64 {
    path.split_once('?')
        .map(|(_, query)| query)
        .unwrap_or("")
        .split('&')
        .find_map(|pair| {
            pair.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
        })
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn serve<C: Connection>(stream: C, unhealthy: bool) {
    let Ok(read_half) = stream.duplicate() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let close = header("connection").is_some_and(|value| value.eq_ignore_ascii_case("close"));
        if !QUIET.load(Ordering::Relaxed) {
            println!("{method} {path}");
        }
        let route = path.split('?').next().unwrap_or("/");

        if route == "/crash" {
            std::process::exit(3);
        }
        if route == "/hangup" {
            return;
        }
        if route == "/ws" {
            let key = header("sec-websocket-key").unwrap_or("").to_string();
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            if writer.write_all(response.as_bytes()).is_err() {
                return;
            }
            let mut socket = tungstenite::WebSocket::from_raw_socket(
                writer,
                tungstenite::protocol::Role::Server,
                None,
            );
            while let Ok(message) = socket.read() {
                if message.is_close() || socket.send(message).is_err() {
                    return;
                }
            }
            return;
        }

        if route == "/early" {
            let answer =
                "HTTP/1.1 200 OK\r\ncontent-length: 6\r\ncontent-type: text/plain\r\n\r\nearly\n";
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }

        // The body, streamed: counted, never kept.
        let mut body_length = 0u64;
        let chunked =
            header("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
        let content_length: u64 = header("content-length")
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        let mut buffer = vec![0u8; 64 * 1024];
        let mut read_exactly = |reader: &mut BufReader<C>, mut remaining: u64| -> bool {
            while remaining > 0 {
                let want = remaining.min(buffer.len() as u64) as usize;
                match reader.read(&mut buffer[..want]) {
                    Ok(0) | Err(_) => return false,
                    Ok(read) => {
                        remaining -= read as u64;
                        body_length += read as u64;
                        if route == "/upload" {
                            RECEIVED.fetch_add(read as u64, Ordering::SeqCst);
                        }
                    }
                }
            }
            true
        };
        if chunked {
            loop {
                let mut size_line = String::new();
                if reader.read_line(&mut size_line).unwrap_or(0) == 0 {
                    return;
                }
                let size =
                    u64::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                        .unwrap_or(0);
                if !read_exactly(&mut reader, size) {
                    return;
                }
                let mut crlf = String::new();
                let _ = reader.read_line(&mut crlf);
                if size == 0 {
                    break;
                }
            }
        } else if !read_exactly(&mut reader, content_length) {
            return;
        }
        if route == "/early" {
            if close {
                return;
            }
            continue;
        }

        if route == "/download" {
            let total = query_number(&path, "bytes");
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {total}\r\ncontent-type: application/octet-stream\r\n\r\n"
            );
            if writer.write_all(head.as_bytes()).is_err() {
                return;
            }
            let chunk = vec![b'd'; 64 * 1024];
            let mut left = total;
            while left > 0 {
                let part = left.min(chunk.len() as u64) as usize;
                if writer.write_all(&chunk[..part]).is_err() {
                    return;
                }
                SENT.fetch_add(part as u64, Ordering::SeqCst);
                left -= part as u64;
            }
            if close {
                return;
            }
            continue;
        }

        let (status, text) = match route {
            "/health" if unhealthy => ("500 Internal Server Error", "unhealthy\n".to_string()),
            "/health" => ("200 OK", "ok\n".to_string()),
            "/" => {
                let name = std::env::var("NAME").unwrap_or_else(|_| "backend".into());
                ("200 OK", format!("{name} {}\n", std::process::id()))
            }
            "/env" => {
                let mut vars: Vec<String> = std::env::vars()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                vars.sort();
                ("200 OK", vars.join("\n") + "\n")
            }
            "/headers" => {
                let lines: Vec<String> = headers
                    .iter()
                    .map(|(name, value)| format!("{name}: {value}"))
                    .collect();
                ("200 OK", lines.join("\n") + "\n")
            }
            "/slow" => {
                std::thread::sleep(Duration::from_millis(query_number(&path, "ms")));
                ("200 OK", "slow\n".to_string())
            }
            "/upload" => ("200 OK", format!("{body_length}\n")),
            "/alloc" => {
                let mb = query_number(&path, "mb");
                let mut block = vec![0u8; (mb as usize) << 20];
                // Touch every page, so the memory is used, not only reserved.
                for byte in block.iter_mut().step_by(4096) {
                    *byte = 1;
                }
                HELD.lock().unwrap().push(block);
                ("200 OK", format!("holding {mb} MB more\n"))
            }
            "/stop-ticks" => match stop_ticks() {
                Some(last) => ("200 OK", format!("{last}\n")),
                None => ("200 OK", "none\n".to_string()),
            },
            "/stats" => (
                "200 OK",
                format!(
                    "received={} sent={}\n",
                    RECEIVED.load(Ordering::SeqCst),
                    SENT.load(Ordering::SeqCst)
                ),
            ),
            _ => ("404 Not Found", "not found\n".to_string()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}
