//! A small client of the Chrome DevTools Protocol, enough to drive a headless Chromium from
//! the tests: start it (its own profile, `--no-sandbox` for root in CI), open a page, go to an
//! address, evaluate JavaScript, wait for a condition, take a screenshot. One WebSocket to
//! the page (tungstenite, blocking), one command at a time; events are read past.
//! Chromium is killed (by its pid) when this is dropped, even when a test fails.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// The screen of the pages and their screenshots.
pub(crate) const WIDTH: u32 = 1280;
pub(crate) const HEIGHT: u32 = 800;

pub(crate) struct Chromium {
    child: Child,
    page: WebSocket<TcpStream>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

/// The browser to run: `$CHROMIUM`, else Debian's `chromium`.
fn program() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string())
}

fn connect(url: &str) -> WebSocket<TcpStream> {
    let address = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (socket, _) = tungstenite::client(url, stream).expect("the DevTools handshake");
    socket
}

fn send(socket: &mut WebSocket<TcpStream>, id: u64, method: &str, params: Value) -> Value {
    let command = json!({ "id": id, "method": method, "params": params });
    socket
        .send(Message::text(command.to_string()))
        .expect("send a DevTools command");
    loop {
        let message = socket.read().expect("read from DevTools");
        let Message::Text(text) = message else {
            continue;
        };
        let value: Value = serde_json::from_str(text.as_str()).unwrap();
        if value["id"] == json!(id) {
            return value;
        }
    }
}

impl Chromium {
    /// A headless Chromium with one blank page of 1280x800.
    pub(crate) fn start() -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(program())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={WIDTH},{HEIGHT}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {}: {error}; install Debian's chromium (`apt-get install chromium`) or set CHROMIUM",
                    program()
                )
            });
        let stderr = child.stderr.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = sender.send(url.trim().to_string());
                }
            }
        });
        let browser_url = match receiver.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not say where DevTools listen");
            }
        };
        let mut browser = connect(&browser_url);
        let created = send(
            &mut browser,
            1,
            "Target.createTarget",
            json!({ "url": "about:blank" }),
        );
        let target = created["result"]["targetId"]
            .as_str()
            .expect("a page")
            .to_string();
        let host = browser_url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap();
        let page = connect(&format!("ws://{host}/devtools/page/{target}"));
        let mut chromium = Chromium {
            child,
            page,
            next_id: 1,
            _profile: profile,
        };
        chromium.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false }),
        );
        chromium.call("Page.enable", json!({}));
        chromium
    }

    /// A command to the page; its result (or its error, as the answer has it).
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        send(&mut self.page, self.next_id, method, params)
    }

    /// Goes to `url` and waits until the page is loaded.
    pub(crate) fn navigate(&mut self, url: &str) {
        let answer = self.call("Page.navigate", json!({ "url": url }));
        assert!(answer.get("error").is_none(), "navigate to {url}: {answer}");
        assert!(
            self.wait_for(
                &format!(
                    "document.readyState === 'complete' && location.href === {}",
                    json!(url)
                ),
                Duration::from_secs(20)
            ),
            "{url} did not load"
        );
    }

    /// The value of `expression` in the page (a promise is awaited); `Value::Null` when it
    /// threw (the page was being replaced, say).
    pub(crate) fn eval(&mut self, expression: &str) -> Value {
        let answer = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if answer["result"].get("exceptionDetails").is_some() {
            return Value::Null;
        }
        answer["result"]["result"]["value"].clone()
    }

    pub(crate) fn text(&mut self, expression: &str) -> String {
        self.eval(expression)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Whether `condition` (JavaScript) becomes true within `timeout`.
    pub(crate) fn wait_for(&mut self, condition: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(&format!("Boolean({condition})")) == json!(true) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG of the page as shown (1280x800) written to `path`.
    pub(crate) fn screenshot(&mut self, path: &Path) {
        let answer = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let data = answer["result"]["data"]
            .as_str()
            .unwrap_or_else(|| panic!("no screenshot: {answer}"));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, base64_decode(data)).unwrap();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (with padding) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |byte: u8| -> u32 {
        match byte {
            b'A'..=b'Z' => (byte - b'A') as u32,
            b'a'..=b'z' => (byte - b'a') as u32 + 26,
            b'0'..=b'9' => (byte - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {byte}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|byte| *byte != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut bits = 0u32;
        for (index, byte) in chunk.iter().enumerate() {
            bits |= value(*byte) << (18 - 6 * index);
        }
        let count = chunk.len() * 6 / 8;
        for index in 0..count {
            out.push((bits >> (16 - 8 * index)) as u8);
        }
    }
    out
}

/// PNG's signature and the size its header gives.
pub(crate) fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" {
        return None;
    }
    let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((width, height))
}

#[test]
fn base64_is_decoded() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
