//! Failed token checks per client address: after `failures` failures within `window`, the
//! address's further failures are answered 429 (with Retry-After) for `block`, without a log
//! line each. The address is the TCP peer, or, when the peer is a trusted proxy
//! (`trusted_proxies`), the client its `X-Forwarded-For` names (`proxy::forwarded`), never what
//! a client says of itself; IPv6 addresses count by their /64, which one client usually holds
//! whole.
//!
//! What it does not do, on purpose: refuse a valid token. Tokens are 256 random bits, so
//! guessing is out of reach at any request rate and checking one costs a SHA-256; refusing to
//! check tokens from a blocked address would add no security but would let anyone sharing the
//! admin's address (a tenant on 127.0.0.1, every client behind a reverse proxy) lock the
//! admin out. Only failures are limited, so a flood of bad tokens, from any address, never
//! locks anyone out.
//!
//! Memory is bounded: at most `capacity` addresses are remembered; a new one evicts a stale
//! entry (window and block over) or else the least recently seen. Eviction only forgets
//! failures, so it can never block anybody.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Failures within `window` that start a block.
    pub failures: u32,
    pub window: Duration,
    /// How long failures are answered 429 once blocked.
    pub block: Duration,
    /// Addresses remembered at most.
    pub capacity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            failures: 10,
            window: Duration::from_secs(60),
            block: Duration::from_secs(60),
            capacity: 4096,
        }
    }
}

/// What to answer a failed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 401.
    Unauthorized,
    /// 429, try again after this long. `first` for the failure that started the block.
    Limited { retry_after: Duration, first: bool },
}

/// A client: an IPv4 address, or the /64 of an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Source(IpAddr);

impl Source {
    pub(crate) fn of(address: IpAddr) -> Source {
        match address {
            IpAddr::V4(v4) => Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Source(IpAddr::V6(prefix.into()))
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
    last_seen: Instant,
}

impl Entry {
    /// Whether its failures no longer count: its block is over, or (never blocked) its
    /// window is.
    fn stale(&self, now: Instant, limits: &Limits) -> bool {
        match self.blocked_until {
            Some(until) => until <= now,
            None => now.saturating_duration_since(self.window_start) >= limits.window,
        }
    }
}

pub(crate) struct Limiter {
    limits: Limits,
    entries: Mutex<HashMap<Source, Entry>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Limiter {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failed check from `address` at `now` and says how to answer it.
    pub(crate) fn failed(&self, address: IpAddr, now: Instant) -> Verdict {
        let limits = &self.limits;
        let source = Source::of(address);
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !entries.contains_key(&source) && entries.len() >= limits.capacity {
            evict(&mut entries, now, limits);
        }
        let entry = entries.entry(source).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
            last_seen: now,
        });
        entry.last_seen = now;
        if let Some(until) = entry.blocked_until.filter(|until| *until > now) {
            return Verdict::Limited {
                retry_after: until - now,
                first: false,
            };
        }
        if entry.stale(now, limits) {
            *entry = Entry {
                window_start: now,
                failures: 0,
                blocked_until: None,
                last_seen: now,
            };
        }
        entry.failures += 1;
        if entry.failures > limits.failures {
            entry.blocked_until = Some(now + limits.block);
            return Verdict::Limited {
                retry_after: limits.block,
                first: true,
            };
        }
        Verdict::Unauthorized
    }

    /// Addresses remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

/// Makes room for one entry: a stale one goes first, else the least recently seen.
fn evict(entries: &mut HashMap<Source, Entry>, now: Instant, limits: &Limits) {
    let victim = entries
        .iter()
        .min_by_key(|(_, entry)| (!entry.stale(now, limits), entry.last_seen))
        .map(|(source, _)| *source);
    if let Some(source) = victim {
        entries.remove(&source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn limits() -> Limits {
        Limits {
            failures: 3,
            window: Duration::from_secs(60),
            block: Duration::from_secs(30),
            capacity: 4,
        }
    }

    #[test]
    fn an_address_is_limited_after_too_many_failures_and_only_it() {
        let limiter = Limiter::new(limits());
        let start = Instant::now();
        for n in 0..3 {
            assert_eq!(
                limiter.failed(v4(1), start + Duration::from_secs(n)),
                Verdict::Unauthorized
            );
        }
        let at = start + Duration::from_secs(3);
        assert_eq!(
            limiter.failed(v4(1), at),
            Verdict::Limited {
                retry_after: Duration::from_secs(30),
                first: true
            }
        );
        assert_eq!(
            limiter.failed(v4(1), at + Duration::from_secs(10)),
            Verdict::Limited {
                retry_after: Duration::from_secs(20),
                first: false
            },
            "failures while blocked do not extend the block"
        );
        assert_eq!(
            limiter.failed(v4(2), at),
            Verdict::Unauthorized,
            "another address is not affected"
        );
        assert_eq!(
            limiter.failed(v4(1), at + Duration::from_secs(30)),
            Verdict::Unauthorized,
            "the block ends and counting starts again"
        );
    }

    #[test]
    fn failures_spread_over_more_than_a_window_never_block() {
        let limiter = Limiter::new(limits());
        let start = Instant::now();
        for n in 0..20 {
            assert_eq!(
                limiter.failed(v4(1), start + Duration::from_secs(25 * n)),
                Verdict::Unauthorized
            );
        }
    }

    #[test]
    fn memory_is_bounded_and_stale_or_oldest_entries_go_first() {
        let limiter = Limiter::new(limits());
        let start = Instant::now();
        // 10.0.0.1 is blocked; 2 and 3 are recent; 4 is stale by the time 5 comes.
        for _ in 0..4 {
            limiter.failed(v4(1), start + Duration::from_secs(50));
        }
        limiter.failed(v4(4), start);
        limiter.failed(v4(2), start + Duration::from_secs(55));
        limiter.failed(v4(3), start + Duration::from_secs(56));
        assert_eq!(limiter.len(), 4);
        let later = start + Duration::from_secs(61);
        limiter.failed(v4(5), later);
        assert_eq!(limiter.len(), 4);
        assert!(
            matches!(limiter.failed(v4(1), later), Verdict::Limited { .. }),
            "the blocked address was kept; the stale one went"
        );
        for n in 6..200 {
            limiter.failed(v4(n), later);
        }
        assert_eq!(limiter.len(), 4, "never more than capacity");
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(a.into()), Source::of(b.into()));
        assert_ne!(Source::of(a.into()), Source::of(c.into()));
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Source::of(mapped.into()), Source::of(v4(1)));
    }
}
