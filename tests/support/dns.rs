//! A tiny DNS client for tests: one question (A or AAAA) over UDP, the addresses of the answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// The DNS record types [`dns_query`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordType {
    A,
    Aaaa,
}

impl RecordType {
    fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Aaaa => 28,
        }
    }
}

/// Asks the DNS server at `server` over UDP for the `record_type` records of `name`: their
/// addresses (none when it has none), or `None` when no valid answer came within a second.
pub(crate) fn dns_query(
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
) -> Option<Vec<IpAddr>> {
    static NEXT_ID: AtomicU16 = AtomicU16::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    // Header: id, flags (recursion desired), one question, no other records.
    let mut query = Vec::new();
    query.extend(id.to_be_bytes());
    query.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        query.push(u8::try_from(label.len()).expect("a DNS label is at most 63 bytes"));
        query.extend(label.as_bytes());
    }
    query.push(0);
    query.extend(record_type.code().to_be_bytes());
    query.extend(1u16.to_be_bytes()); // class IN
    // Connected, so that a server not listening yet is an error at once, not a timeout.
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.connect(server).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    socket.send(&query).ok()?;
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let length = socket.recv(&mut buffer).ok()?;
        let answer = &buffer[..length];
        if answer.get(..2) == Some(&id.to_be_bytes()[..]) {
            return parse_answer(answer, record_type);
        }
    }
    None
}

/// The addresses of `record_type` in the answer section of a DNS response; `None` when the
/// response is malformed or an error other than "no such name".
fn parse_answer(message: &[u8], record_type: RecordType) -> Option<Vec<IpAddr>> {
    let u16_at = |at: usize| {
        message
            .get(at..at + 2)
            .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let flags = u16_at(2)?;
    let is_response = flags & 0x8000 != 0;
    let rcode = flags & 0x000f;
    if !is_response || !(rcode == 0 || rcode == 3) {
        return None;
    }
    let questions = u16_at(4)?;
    let answers = u16_at(6)?;
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(message, at)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        at = skip_name(message, at)?;
        let (kind, length) = (u16_at(at)?, usize::from(u16_at(at + 8)?));
        let data = message.get(at + 10..at + 10 + length)?;
        at += 10 + length;
        if kind != record_type.code() {
            continue;
        }
        match (record_type, data.len()) {
            (RecordType::A, 4) => {
                addresses.push(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data).ok()?)));
            }
            (RecordType::Aaaa, 16) => {
                addresses.push(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?)));
            }
            _ => return None,
        }
    }
    Some(addresses)
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let length = *message.get(at)?;
        match length {
            0 => return Some(at + 1),
            // A pointer ends the name.
            0xc0.. => return Some(at + 2),
            _ => at += 1 + usize::from(length),
        }
    }
}
