//! `IpRange`: an IP address or a CIDR range (`127.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`), as
//! `trusted_proxies` in [settings] lists them. Parsed once, at the edge; matching is a mask and
//! a comparison. Pure.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP address (a range of one) or a CIDR range. An IPv4-mapped IPv6 address
/// (`::ffff:10.0.0.1`, as a dual-stack socket reports an IPv4 peer) is the IPv4 address it
/// carries, both in a range and in what is matched against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    /// The range's first address: no bit set past the prefix.
    network: IpAddr,
    /// Leading bits that an address must share with `network`.
    prefix: u8,
}

/// Why a text is not an `IpRange`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpRangeError {
    #[error("`{0}` is not an IP address")]
    NotAnAddress(String),
    #[error("the prefix of `{text}` must be between 0 and {max}")]
    BadPrefix { text: String, max: u8 },
    /// `10.0.0.1/8`: the address has bits past the prefix; `network` is the range it starts.
    #[error("`{text}` has address bits set past its prefix")]
    HostBits { text: String, network: IpRange },
}

impl IpRange {
    /// `ADDRESS` or `ADDRESS/PREFIX`.
    pub fn parse(text: &str) -> Result<IpRange, IpRangeError> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| IpRangeError::NotAnAddress(address.to_string()))?;
        let max = bits(address);
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= max)
                .ok_or_else(|| IpRangeError::BadPrefix {
                    text: text.to_string(),
                    max,
                })?,
        };
        let range = IpRange::canonical(masked(address, prefix), prefix);
        if masked(address, prefix) != address {
            return Err(IpRangeError::HostBits {
                text: text.to_string(),
                network: range,
            });
        }
        Ok(range)
    }

    /// A mapped IPv4 range (`::ffff:0:0/96` and narrower) as the IPv4 range it is.
    fn canonical(network: IpAddr, prefix: u8) -> IpRange {
        match network {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => IpRange {
                    network: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                None => IpRange { network, prefix },
            },
            _ => IpRange { network, prefix },
        }
    }

    /// Leading bits an address must share with the range (32 or 128 for a single address).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `address` is in the range.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        bits(address) == bits(self.network) && masked(address, self.prefix) == self.network
    }
}

impl fmt::Display for IpRange {
    /// The address alone for a range of one, else `ADDRESS/PREFIX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == bits(self.network) {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

fn bits(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `address` with every bit past the first `prefix` cleared.
fn masked(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> IpRange {
        IpRange::parse(text).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_and_ranges_match_what_they_cover() {
        let cases = [
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.1.0/24", "192.168.1.200", true),
            ("192.168.1.0/24", "192.168.2.1", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "::1", false),
            ("::1", "::1", true),
            ("::1", "127.0.0.1", false),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::/0", "2001:db8::1", true),
            // An IPv4 peer on a dual-stack socket.
            ("127.0.0.1", "::ffff:127.0.0.1", true),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("::ffff:10.0.0.0/104", "10.1.2.3", true),
        ];
        for (text, address, expected) in cases {
            assert_eq!(
                range(text).contains(ip(address)),
                expected,
                "{text} contains {address}"
            );
        }
    }

    #[test]
    fn ranges_are_shown_as_written() {
        for text in ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8", "0.0.0.0/0"] {
            assert_eq!(range(text).to_string(), text);
        }
        assert_eq!(range("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
        assert_eq!(range("10.0.0.1/32").to_string(), "10.0.0.1");
    }

    #[test]
    fn what_is_not_a_range_says_why() {
        let error = |text: &str| IpRange::parse(text).unwrap_err();
        assert_eq!(
            error("localhost"),
            IpRangeError::NotAnAddress("localhost".into())
        );
        assert_eq!(
            error("10.0.0.0/"),
            IpRangeError::BadPrefix {
                text: "10.0.0.0/".into(),
                max: 32
            }
        );
        assert_eq!(
            error("10.0.0.0/33"),
            IpRangeError::BadPrefix {
                text: "10.0.0.0/33".into(),
                max: 32
            }
        );
        assert!(matches!(
            error("::/129"),
            IpRangeError::BadPrefix { max: 128, .. }
        ));
        assert_eq!(
            error("10.1.2.3/8"),
            IpRangeError::HostBits {
                text: "10.1.2.3/8".into(),
                network: range("10.0.0.0/8")
            }
        );
        assert_eq!(error("").to_string(), "`` is not an IP address");
    }
}
