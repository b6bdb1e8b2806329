//! Port allocation: every instance gets a port from `settings.port_range` that is stable
//! across its restarts and really free (a bind on 127.0.0.1 succeeds) when handed out.

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener};

use crate::names::InstanceKey;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "no free port left in port_range [{low}, {high}] ({taken} taken by instances, the rest in use by other programs)"
)]
pub struct PortsExhausted {
    pub low: u16,
    pub high: u16,
    pub taken: usize,
}

#[derive(Debug)]
pub struct PortAllocator {
    range: (u16, u16),
    owners: HashMap<u16, InstanceKey>,
    /// Where the next search starts, so ports are not reused right after release.
    cursor: u16,
}

impl PortAllocator {
    pub fn new(range: (u16, u16)) -> Self {
        Self {
            range,
            owners: HashMap::new(),
            cursor: range.0,
        }
    }

    pub fn set_range(&mut self, range: (u16, u16)) {
        self.range = range;
        if !(range.0..=range.1).contains(&self.cursor) {
            self.cursor = range.0;
        }
    }

    /// A port for `key`: `preferred` (its previous port) if still ours to give and free,
    /// else the next free one. `is_free` checks the OS (see [`port_is_free`]).
    pub fn allocate(
        &mut self,
        key: &InstanceKey,
        preferred: Option<u16>,
        is_free: impl Fn(u16) -> bool,
    ) -> Result<u16, PortsExhausted> {
        if let Some(port) = preferred
            && self.owners.get(&port).is_none_or(|owner| owner == key)
            && is_free(port)
        {
            self.owners.insert(port, key.clone());
            return Ok(port);
        }
        let (low, high) = self.range;
        let size = u32::from(high - low) + 1;
        for step in 0..size {
            let port = low + ((u32::from(self.cursor - low) + step) % size) as u16;
            if self.owners.contains_key(&port) || !is_free(port) {
                continue;
            }
            self.owners.insert(port, key.clone());
            self.cursor = if port == high { low } else { port + 1 };
            return Ok(port);
        }
        Err(PortsExhausted {
            low,
            high,
            taken: self.owners.len(),
        })
    }

    /// Marks `port` as `key`'s without checking (an adopted process already listens on it).
    pub fn reserve(&mut self, key: &InstanceKey, port: u16) {
        self.owners.insert(port, key.clone());
    }

    pub fn release(&mut self, port: u16) {
        self.owners.remove(&port);
    }
}

/// Whether nothing listens on 127.0.0.1:`port` (a bind succeeds).
pub(crate) fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The kernel's ephemeral port range (outgoing connections take ports from it).
pub(crate) fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    Some((parts.next()?.ok()?, parts.next()?.ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> InstanceKey {
        InstanceKey::parse(&format!("a:{id}")).unwrap()
    }

    #[test]
    fn ports_are_stable_unique_and_free() {
        let mut ports = PortAllocator::new((100, 103));
        let busy = |port| port != 101;
        assert_eq!(ports.allocate(&key("a"), None, busy), Ok(100));
        assert_eq!(
            ports.allocate(&key("b"), None, busy),
            Ok(102),
            "101 is used by another program"
        );
        assert_eq!(
            ports.allocate(&key("a"), Some(100), busy),
            Ok(100),
            "the same instance keeps its port"
        );
        assert_eq!(
            ports.allocate(&key("c"), Some(100), busy),
            Ok(103),
            "not someone else's"
        );
        assert_eq!(
            ports.allocate(&key("d"), None, busy),
            Err(PortsExhausted {
                low: 100,
                high: 103,
                taken: 3
            })
        );
        ports.release(102);
        assert_eq!(ports.allocate(&key("d"), None, busy), Ok(102));
    }

    #[test]
    fn a_listening_port_is_not_free() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!port_is_free(port));
        drop(listener);
        assert!(port_is_free(port));
    }
}
