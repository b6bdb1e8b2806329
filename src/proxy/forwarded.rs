//! Who a request comes from: the peer of its connection (`Peer`, made once per connection),
//! the `X-Forwarded-For`, `-Proto` and `-Host` a backend gets, and the client address that
//! ten's own pages count failed token checks against.
//!
//! A peer is believed only if it is one of `trusted_proxies` in [settings] (a reverse proxy in
//! front of ten, such as Caddy). From any other peer, what a request says of its origin is
//! replaced: the backend gets `X-Forwarded-For: PEER`, the scheme of the connection and the
//! Host that was routed. From a trusted proxy, the peer is appended to its `X-Forwarded-For`,
//! and its `X-Forwarded-Proto` and `-Host` are kept.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::IpRange;

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The client at the other end of a connection (made once per connection, borrowed by each
/// request).
pub(crate) struct Peer {
    pub address: SocketAddr,
    /// Whether it is a trusted proxy (in `trusted_proxies` when the connection was accepted):
    /// its `X-Forwarded-*` headers are believed.
    pub trusted: bool,
    /// Whether the connection came over TLS: `X-Forwarded-Proto: https` then (unless a
    /// trusted proxy says otherwise).
    secure: bool,
    /// Its IP address as an `X-Forwarded-For` value, made once per connection.
    forwarded_for: HeaderValue,
}

impl Peer {
    /// The peer at `address` of a plain-HTTP connection; `trusted`: whether `address` is a
    /// trusted proxy (see [`Peer::of`]).
    pub(crate) fn new(address: SocketAddr, trusted: bool) -> Self {
        // An IPv4 client of a dual-stack socket is shown as the IPv4 address it is.
        let forwarded_for = HeaderValue::try_from(address.ip().to_canonical().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Self {
            address,
            trusted,
            secure: false,
            forwarded_for,
        }
    }

    /// The peer at `address`, trusted if it is in `trusted_proxies`.
    pub(crate) fn of(address: SocketAddr, trusted_proxies: &[IpRange]) -> Self {
        Self::new(address, is_trusted(trusted_proxies, address.ip()))
    }

    /// The same peer on a connection accepted over TLS: its requests are forwarded with
    /// `X-Forwarded-Proto: https`.
    pub(crate) fn over_tls(mut self) -> Self {
        self.secure = true;
        self
    }

    /// Whether the connection came over TLS (the dashboard's cookie is `Secure` then).
    pub(crate) fn is_secure(&self) -> bool {
        self.secure
    }

    /// The scheme of this connection, as an `X-Forwarded-Proto` value.
    fn scheme(&self) -> HeaderValue {
        HeaderValue::from_static(if self.secure { "https" } else { "http" })
    }

    /// The address of the client a request on this connection is from: the peer, or, when
    /// the peer is a trusted proxy, what its `X-Forwarded-For` says (see [`client_address`]).
    pub(crate) fn client(&self, headers: &HeaderMap, trusted_proxies: &[IpRange]) -> IpAddr {
        let peer = self.address.ip().to_canonical();
        if self.trusted {
            client_address(peer, headers, trusted_proxies)
        } else {
            peer
        }
    }
}

/// Whether `address` is in one of the `trusted_proxies` ranges.
fn is_trusted(trusted_proxies: &[IpRange], address: IpAddr) -> bool {
    trusted_proxies.iter().any(|range| range.contains(address))
}

/// The client behind a trusted proxy at `peer`: the right-most address of `X-Forwarded-For`
/// that is not itself a trusted proxy. Each proxy appends the address it got the request from,
/// so what is left of the first untrusted one is whatever that client wrote. Without the
/// header, `peer`; when every address is trusted, the left-most; at an entry that is not an
/// address, the trusted one right of it.
pub(crate) fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpRange]) -> IpAddr {
    let entries: Vec<&[u8]> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(address) = entry_address(entry) else {
            break;
        };
        client = address;
        if !is_trusted(trusted, address) {
            break;
        }
    }
    client
}

/// The address of one `X-Forwarded-For` entry: `ADDRESS`, or `ADDRESS:PORT` / `[V6]:PORT` as
/// some proxies write it.
fn entry_address(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    let address = text
        .parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()?;
    Some(address.to_canonical())
}

/// Sets the `X-Forwarded-*` headers of a request from `peer` on its way to a backend.
/// `routed_host`: the Host the request was routed by.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    peer: &Peer,
    routed_host: Option<HeaderValue>,
) {
    if peer.trusted {
        set_behind_proxy(headers, peer, routed_host);
        return;
    }
    // Whatever the client claims is replaced (`insert` drops every value of the name).
    headers.insert(X_FORWARDED_FOR, peer.forwarded_for.clone());
    headers.insert(X_FORWARDED_PROTO, peer.scheme());
    if let Some(host) = routed_host {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

/// `set_forwarded` for a trusted proxy: the peer appended to the chain, the proxy's scheme
/// and host kept.
fn set_behind_proxy(headers: &mut HeaderMap, peer: &Peer, routed_host: Option<HeaderValue>) {
    let chain = appended(headers, peer).unwrap_or_else(|| peer.forwarded_for.clone());
    headers.insert(X_FORWARDED_FOR, chain);
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, peer.scheme());
    }
    if !headers.contains_key(&X_FORWARDED_HOST)
        && let Some(host) = routed_host
    {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

/// The request's `X-Forwarded-For` (every value, in order) with the peer appended; `None`
/// without one.
fn appended(headers: &HeaderMap, peer: &Peer) -> Option<HeaderValue> {
    let mut chain = Vec::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        if !chain.is_empty() {
            chain.extend_from_slice(b", ");
        }
        chain.extend_from_slice(value.as_bytes());
    }
    if chain.is_empty() {
        return None;
    }
    chain.extend_from_slice(b", ");
    chain.extend_from_slice(peer.forwarded_for.as_bytes());
    HeaderValue::from_bytes(&chain).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(texts: &[&str]) -> Vec<IpRange> {
        texts
            .iter()
            .map(|text| IpRange::parse(text).unwrap())
            .collect()
    }

    fn forwarded_for(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_peer_is_trusted_only_if_listed() {
        let trusted = ranges(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = |address: &str| Peer::of(address.parse().unwrap(), &trusted).trusted;
        assert!(peer("127.0.0.1:5000"));
        assert!(peer("10.2.3.4:5000"));
        assert!(
            peer("[::ffff:10.2.3.4]:5000"),
            "IPv4 on a dual-stack socket"
        );
        assert!(!peer("127.0.0.2:5000"));
        assert!(!peer("[::1]:5000"));
        assert!(!Peer::of("127.0.0.1:5000".parse().unwrap(), &[]).trusted);
    }

    #[test]
    fn the_client_is_the_right_most_address_that_is_not_a_trusted_proxy() {
        let trusted = ranges(&["127.0.0.1", "10.0.0.0/8"]);
        let proxy = ip("127.0.0.1");
        let client = |values: &[&str]| client_address(proxy, &forwarded_for(values), &trusted);
        // What the client wrote itself (left) is passed over.
        assert_eq!(client(&["198.51.100.1, 203.0.113.9"]), ip("203.0.113.9"));
        // Proxies of its own in between are skipped, over several header lines too.
        assert_eq!(
            client(&["198.51.100.1, 203.0.113.9", "10.0.0.5, 10.0.0.6"]),
            ip("203.0.113.9")
        );
        assert_eq!(client(&["203.0.113.9:4711"]), ip("203.0.113.9"));
        assert_eq!(client(&["[2001:db8::7]:4711"]), ip("2001:db8::7"));
        assert_eq!(client(&[" ::ffff:203.0.113.9 "]), ip("203.0.113.9"));
        // Every address trusted: the left-most.
        assert_eq!(client(&["10.0.0.5, 10.0.0.6"]), ip("10.0.0.5"));
        // No header: the proxy itself.
        assert_eq!(client(&[]), proxy);
        // A made-up entry stops the walk at the trusted address right of it.
        assert_eq!(client(&["203.0.113.9, unknown, 10.0.0.5"]), ip("10.0.0.5"));
        assert_eq!(client(&["203.0.113.9, "]), proxy);
    }

    #[test]
    fn only_a_trusted_peer_has_its_forwarded_for_believed() {
        let trusted = ranges(&["127.0.0.1"]);
        let headers = forwarded_for(&["203.0.113.9"]);
        let from =
            |address: &str| Peer::of(address.parse().unwrap(), &trusted).client(&headers, &trusted);
        assert_eq!(from("127.0.0.1:5000"), ip("203.0.113.9"));
        assert_eq!(from("127.0.0.2:5000"), ip("127.0.0.2"));
        assert_eq!(from("[::ffff:127.0.0.2]:5000"), ip("127.0.0.2"));
    }

    /// The `X-Forwarded-*` headers a backend gets, one "name: value" per value.
    fn forwarded(headers: &HeaderMap) -> Vec<String> {
        [&X_FORWARDED_FOR, &X_FORWARDED_PROTO, &X_FORWARDED_HOST]
            .into_iter()
            .flat_map(|name| {
                headers
                    .get_all(name)
                    .iter()
                    .map(move |value| format!("{name}: {}", value.to_str().unwrap()))
            })
            .collect()
    }

    /// A request that claims an origin of its own, as a proxy (or a liar) would send it.
    fn claiming() -> HeaderMap {
        let mut headers = forwarded_for(&["198.51.100.1", "203.0.113.9"]);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        headers.insert(
            X_FORWARDED_HOST,
            HeaderValue::from_static("a.notes.example.com"),
        );
        headers
    }

    fn routed() -> Option<HeaderValue> {
        Some(HeaderValue::from_static("a.notes.localhost"))
    }

    #[test]
    fn an_untrusted_peers_claims_are_replaced() {
        let peer = Peer::new("10.1.2.3:5000".parse().unwrap(), false);
        let mut headers = claiming();
        set_forwarded(&mut headers, &peer, routed());
        assert_eq!(
            forwarded(&headers),
            [
                "x-forwarded-for: 10.1.2.3",
                "x-forwarded-proto: http",
                "x-forwarded-host: a.notes.localhost",
            ]
        );
    }

    #[test]
    fn a_trusted_proxys_headers_are_kept_and_the_chain_extended() {
        let peer = Peer::new("127.0.0.1:5000".parse().unwrap(), true);
        let mut headers = claiming();
        set_forwarded(&mut headers, &peer, routed());
        assert_eq!(
            forwarded(&headers),
            [
                "x-forwarded-for: 198.51.100.1, 203.0.113.9, 127.0.0.1",
                "x-forwarded-proto: https",
                "x-forwarded-host: a.notes.example.com",
            ]
        );
        // A trusted proxy that says nothing of the origin: as for anyone else.
        let mut bare = HeaderMap::new();
        set_forwarded(&mut bare, &peer, routed());
        assert_eq!(
            forwarded(&bare),
            [
                "x-forwarded-for: 127.0.0.1",
                "x-forwarded-proto: http",
                "x-forwarded-host: a.notes.localhost",
            ]
        );
    }

    #[test]
    fn a_connection_over_tls_forwards_https() {
        let address = "[::ffff:192.0.2.4]:443".parse().unwrap();
        let peer = Peer::new(address, false).over_tls();
        let mut headers = claiming();
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        set_forwarded(&mut headers, &peer, routed());
        assert_eq!(
            forwarded(&headers),
            [
                "x-forwarded-for: 192.0.2.4",
                "x-forwarded-proto: https",
                "x-forwarded-host: a.notes.localhost",
            ]
        );
        // A trusted proxy's own word wins over the scheme of the hop from it.
        let proxy = Peer::new(address, true).over_tls();
        let mut from_proxy = claiming();
        from_proxy.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        set_forwarded(&mut from_proxy, &proxy, routed());
        assert!(forwarded(&from_proxy).contains(&"x-forwarded-proto: http".to_string()));
        let mut plain = HeaderMap::new();
        set_forwarded(&mut plain, &proxy, routed());
        assert!(forwarded(&plain).contains(&"x-forwarded-proto: https".to_string()));
    }
}
