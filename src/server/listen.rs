//! The listening sockets of `ten serve`: one `SO_REUSEPORT` socket per proxy worker, so the
//! kernel spreads new connections over the workers — and no one else's in the group.
//!
//! `SO_REUSEPORT` lets any socket of the same user join a port: a second ten started by
//! mistake on the same port would bind it too, and the kernel would split connections between
//! two configurations. The kernel cannot be told to keep a group to one process, so once its
//! sockets listen, a server looks at the port's listeners (`/proc/net/tcp`, `tcp6`) and
//! refuses to serve if any that overlaps its address is not its own: the second server to
//! bind a port always sees the first and steps back, with "address in use", as it would for
//! any other program holding the port (whose socket, without `SO_REUSEPORT`, makes the bind
//! itself fail).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Why the port cannot be ours.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListenError {
    #[error("cannot listen on {address}: address in use")]
    InUse { address: SocketAddr },
    #[error("cannot listen on {address}: {source}")]
    Other {
        address: SocketAddr,
        source: io::Error,
    },
}

/// Binds `count` listening sockets on `address` with `SO_REUSEPORT`; when the port is 0 the
/// first socket picks it for all. Refuses a port that another process's socket shares.
pub(crate) fn bind_listeners(
    address: SocketAddr,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, ListenError> {
    let failed = |address: SocketAddr| {
        move |source: io::Error| {
            if source.kind() == io::ErrorKind::AddrInUse {
                ListenError::InUse { address }
            } else {
                ListenError::Other { address, source }
            }
        }
    };
    let mut listeners = Vec::with_capacity(count.max(1));
    let mut bound = address;
    for _ in 0..count.max(1) {
        let listener = bind_one(bound).map_err(failed(bound))?;
        bound = listener.local_addr().map_err(failed(bound))?;
        listeners.push(listener);
    }
    let ours: Vec<u64> = listeners
        .iter()
        .filter_map(|listener| socket_inode(listener).ok())
        .collect();
    let tables = ["/proc/net/tcp", "/proc/net/tcp6"].map(std::fs::read_to_string);
    let foreign = tables
        .iter()
        .filter_map(|table| table.as_ref().ok())
        .flat_map(|table| listening_sockets(table))
        .any(|(listening, inode)| overlaps(listening, bound) && !ours.contains(&inode));
    if foreign {
        return Err(ListenError::InUse { address: bound });
    }
    Ok(listeners)
}

fn bind_one(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn socket_inode(listener: &std::net::TcpListener) -> io::Result<u64> {
    let stat = nix::sys::stat::fstat(listener).map_err(io::Error::from)?;
    Ok(stat.st_ino)
}

/// Whether a listener on `other` takes connections meant for `ours`: same port, and the
/// same address or a wildcard on either side.
fn overlaps(other: SocketAddr, ours: SocketAddr) -> bool {
    let plain = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (theirs, mine) = (plain(other.ip()), plain(ours.ip()));
    other.port() == ours.port()
        && (theirs == mine || theirs.is_unspecified() || mine.is_unspecified())
}

/// The listening sockets of a `/proc/net/tcp` or `tcp6` table: address and inode.
fn listening_sockets(table: &str) -> impl Iterator<Item = (SocketAddr, u64)> + '_ {
    const LISTEN: &str = "0A";
    table.lines().skip(1).filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(3) != Some(&LISTEN) {
            return None;
        }
        let address = parse_address(fields.get(1)?)?;
        let inode = fields.get(9)?.parse().ok()?;
        Some((address, inode))
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the address in the kernel's
/// own byte order, word by word, and the port in hex.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |index: usize| -> Option<[u8; 4]> {
        let hex = address.get(index * 8..index * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for index in 0..4 {
                bytes[index * 4..index * 4 + 4].copy_from_slice(&word(index)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn kernel_addresses_are_read_in_its_byte_order() {
        if cfg!(target_endian = "little") {
            assert_eq!(
                parse_address("0100007F:1F90"),
                Some(address("127.0.0.1:8080"))
            );
            assert_eq!(
                parse_address("00000000000000000000000001000000:0050"),
                Some(address("[::1]:80"))
            );
            assert_eq!(
                parse_address("0000000000000000FFFF00000100007F:0050"),
                Some(address("[::ffff:127.0.0.1]:80"))
            );
        }
        assert_eq!(
            parse_address("00000000:07E8"),
            Some(address("0.0.0.0:2024"))
        );
        assert_eq!(parse_address("nonsense"), None);
        assert_eq!(parse_address("0100007F:XYZ"), None);
    }

    #[test]
    fn only_listeners_are_read() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 171 1 0000000008c829b7 100 0 0 10 0\n   2: 0100007F:8324 0100007F:9C4B 06 00000000:00000000 03:0000082E 00000000     0        0 0 3 00000000a072e656\n";
        let found: Vec<_> = listening_sockets(table).collect();
        assert_eq!(found, vec![(address("0.0.0.0:2024"), 171)]);
    }

    #[test]
    fn wildcards_overlap_every_address_of_their_port() {
        let ours = address("127.0.0.1:8080");
        assert!(overlaps(address("127.0.0.1:8080"), ours));
        assert!(overlaps(address("0.0.0.0:8080"), ours));
        assert!(overlaps(address("[::]:8080"), ours));
        assert!(overlaps(address("[::ffff:127.0.0.1]:8080"), ours));
        assert!(overlaps(address("10.0.0.1:8080"), address("0.0.0.0:8080")));
        assert!(!overlaps(address("10.0.0.1:8080"), ours));
        assert!(!overlaps(address("127.0.0.1:8081"), ours));
    }

    #[test]
    fn the_workers_share_one_port_picked_once() {
        let listeners = bind_listeners(address("127.0.0.1:0"), 3).unwrap();
        let port = listeners[0].local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert!(
            listeners
                .iter()
                .all(|l| l.local_addr().unwrap().port() == port)
        );
    }
}
