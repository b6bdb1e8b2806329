//! A tiny HTTP backend for ten's tests and benchmarks: std only, a thread per connection,
//! HTTP/1.1 keep-alive. Listens on 127.0.0.1:$PORT.
//!
//!   GET /health    200 "ok"
//!   GET /          200 "<name> <pid>"   (name: $NAME, else "backend")
//!   GET /env       200, the environment, one NAME=value per line
//!   anything else  404
//!
//! Every request is logged on stdout ("GET /path"). Flags: `--unhealthy` answers /health
//! with 500.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .expect("PORT is set");
    let unhealthy = std::env::args().any(|arg| arg == "--unhealthy");
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1:$PORT");
    println!(
        "backend {} listening on 127.0.0.1:{port}",
        std::process::id()
    );
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream, unhealthy));
    }
}

fn serve(stream: TcpStream, unhealthy: bool) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut length = 0usize;
        let mut close = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(value) = lower.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            if lower == "connection: close" {
                close = true;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        println!("{method} {path}");
        let (status, text) = match path.as_str() {
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
