//! The one HTTP/1.1 client of the tests and benchmarks.
//!
//! A [`Request`] is built (method, Host, path, headers, body, the client's own address), sent
//! on a fresh connection with `Connection: close`, and its whole answer read and parsed into a
//! [`Response`] (status, head, body). A [`Connection`] sends requests one after another on one
//! keep-alive connection.
//!
//! Tests that send something other than a well-formed request on purpose (no Host header, a
//! connection half-closed after the request, a body streamed by hand) write their bytes on a
//! stream from [`connect`] (or use [`send_raw`]) and read the answer with [`read_response`] or
//! [`read_head`]: what comes back is parsed here too.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a client waits for bytes of an answer before it gives up on it (status 0): ample,
/// so that only a server that really stopped answering reaches it.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A request; `Host: localhost` unless [`Request::host`] says otherwise.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    method: String,
    target: String,
    host: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    source: Option<IpAddr>,
}

impl Request {
    pub(crate) fn new(method: &str, target: &str) -> Request {
        Request {
            method: method.to_string(),
            target: target.to_string(),
            host: "localhost".to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            source: None,
        }
    }

    pub(crate) fn get(target: &str) -> Request {
        Request::new("GET", target)
    }

    pub(crate) fn post(target: &str) -> Request {
        Request::new("POST", target)
    }

    /// The Host header (what routes a request through ten's proxy).
    pub(crate) fn host(mut self, host: &str) -> Request {
        self.host = host.to_string();
        self
    }

    /// A header, sent after `Host` and `Connection` in the order given.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// `Authorization: Bearer TOKEN`.
    pub(crate) fn bearer(self, token: &str) -> Request {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// The body; its `Content-Length` is sent unless a header gives one.
    pub(crate) fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Connects from this local address (as a client elsewhere would: `127.0.0.2`).
    pub(crate) fn from(mut self, source: IpAddr) -> Request {
        self.source = Some(source);
        self
    }

    /// The request as bytes on the wire, with `Connection: close`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        self.render(true)
    }

    fn render(&self, close: bool) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            self.method, self.target, self.host
        );
        if close {
            head.push_str("Connection: close\r\n");
        }
        let has_length = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-length"));
        // A body, or a method whose requests carry one, says how long it is (as curl does).
        let carries_body = matches!(self.method.as_str(), "POST" | "PUT" | "PATCH");
        if !has_length && (carries_body || !self.body.is_empty()) {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Sends the request on a fresh connection to `address` and reads the whole answer.
    pub(crate) fn send(&self, address: impl ToSocketAddrs) -> Response {
        let mut stream = self.connect(address);
        stream.write_all(&self.to_bytes()).unwrap();
        read_response(&mut stream)
    }

    /// [`Request::send`] to a server that may not listen yet: its refusal is an error.
    pub(crate) fn try_send(&self, address: impl ToSocketAddrs) -> std::io::Result<Response> {
        let mut stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        stream.write_all(&self.to_bytes())?;
        Ok(read_response(&mut stream))
    }

    /// Sends the request and reads only the answer's head (status and headers): for streams,
    /// whose body does not end.
    pub(crate) fn send_for_head(&self, address: impl ToSocketAddrs) -> Response {
        let mut stream = self.connect(address);
        stream.write_all(&self.to_bytes()).unwrap();
        read_head(&mut BufReader::new(stream))
    }

    fn connect(&self, address: impl ToSocketAddrs) -> TcpStream {
        match self.source {
            Some(source) => connect_from(address, source),
            None => connect(address),
        }
    }
}

/// An answer: status (0 when the connection broke before a status line), head (the status
/// line and headers) and body (chunked bodies decoded).
#[derive(Clone, Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    /// The value of the first header named `name` (in any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {} {}", self.status, self.body))
    }
}

/// A connection to `address`, waiting at most [`ANSWER_TIMEOUT`] for each read.
pub(crate) fn connect(address: impl ToSocketAddrs) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    stream
}

/// A connection to `address` from the local address `source`.
pub(crate) fn connect_from(address: impl ToSocketAddrs, source: IpAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let address = address.to_socket_addrs().unwrap().next().unwrap();
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&address.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).unwrap();
    stream
}

/// Sends `bytes` as they are on a fresh connection to `address` and reads the whole answer:
/// for requests that are not what [`Request`] makes, on purpose.
pub(crate) fn send_raw(address: impl ToSocketAddrs, bytes: &[u8]) -> Response {
    let mut stream = connect(address);
    stream.write_all(bytes).unwrap();
    read_response(&mut stream)
}

/// [`send_raw`], then shuts the client's side of the connection down before reading.
pub(crate) fn send_raw_half_closed(address: impl ToSocketAddrs, bytes: &[u8]) -> Response {
    let mut stream = connect(address);
    stream.write_all(bytes).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    read_response(&mut stream)
}

/// Reads everything until the connection ends (or breaks, or times out) and parses it.
pub(crate) fn read_response(stream: &mut impl Read) -> Response {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    parse_response(&bytes)
}

/// Reads an answer's head (up to the empty line) and no further: the body is left in
/// `reader`.
pub(crate) fn read_head(reader: &mut impl BufRead) -> Response {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        match reader.read_until(b'\n', &mut head) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let mut response = parse_response(&head);
    response.body.clear();
    response
}

/// The answer in `bytes`: a head, then the body to the end of `bytes`.
pub(crate) fn parse_response(bytes: &[u8]) -> Response {
    let (head, body) = match bytes.windows(4).position(|window| window == b"\r\n\r\n") {
        Some(end) => (&bytes[..end], &bytes[end + 4..]),
        None => (bytes, &[][..]),
    };
    let head = String::from_utf8_lossy(head).into_owned();
    let status = head
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let mut response = Response {
        status,
        head,
        body: String::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    response.body = String::from_utf8_lossy(&body).into_owned();
    response
}

/// The data of a chunked body (as much of it as there is).
fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(end) = bytes.windows(2).position(|window| window == b"\r\n") {
        let size = std::str::from_utf8(&bytes[..end])
            .ok()
            .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok());
        let Some(size) = size.filter(|size| *size > 0) else {
            break;
        };
        let chunk = &bytes[end + 2..];
        data.extend_from_slice(&chunk[..size.min(chunk.len())]);
        bytes = chunk.get(size + 2..).unwrap_or_default();
    }
    data
}

/// A keep-alive connection: requests sent one after another, each answer read to the end of
/// its body (by its `Content-Length`, or its chunks).
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub(crate) fn open(address: impl ToSocketAddrs) -> Connection {
        let stream = connect(address);
        stream.set_nodelay(true).unwrap();
        Connection {
            reader: BufReader::new(stream),
        }
    }

    pub(crate) fn send(&mut self, request: &Request) -> Response {
        self.reader
            .get_mut()
            .write_all(&request.render(false))
            .unwrap();
        let mut response = read_head(&mut self.reader);
        let mut body = Vec::new();
        if response
            .header("transfer-encoding")
            .is_some_and(|coding| coding.eq_ignore_ascii_case("chunked"))
        {
            let mut encoded = Vec::new();
            loop {
                let mut line = Vec::new();
                self.reader.read_until(b'\n', &mut line).unwrap();
                let size = usize::from_str_radix(
                    std::str::from_utf8(&line)
                        .unwrap()
                        .split(';')
                        .next()
                        .unwrap()
                        .trim(),
                    16,
                )
                .unwrap();
                encoded.extend_from_slice(&line);
                let mut chunk = vec![0u8; size + 2];
                self.reader.read_exact(&mut chunk).unwrap();
                encoded.extend_from_slice(&chunk);
                if size == 0 {
                    break;
                }
            }
            body = dechunk(&encoded);
        } else if let Some(length) = response.header("content-length") {
            body = vec![0u8; length.parse().unwrap()];
            self.reader.read_exact(&mut body).unwrap();
        }
        response.body = String::from_utf8_lossy(&body).into_owned();
        response
    }
}
