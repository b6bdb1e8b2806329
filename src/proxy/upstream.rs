//! What a backend gets of a request, made in place: origin-form target, hop-by-hop headers
//! removed (and those `Connection` names; an upgrade keeps its own), one `Host`, the
//! `X-Forwarded-*` headers (`forwarded`). Header work only: imports nothing of ten's but
//! `forwarded`, and does no I/O.

use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Uri};

use super::forwarded::{Peer, set_forwarded};

/// Headers that belong to one hop, not to the request.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| {
                value
                    .split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
            })
}

/// Removes hop-by-hop headers, and those the Connection header names. An upgrade keeps
/// `Connection: upgrade` and `Upgrade`.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages have none: one pass over the names spares a lookup per hop-by-hop name.
    if headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        remove_hop_by_hop(headers, upgrade);
    }
}

/// `strip_hop_by_hop` once some are known to be there.
fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    let upgrade_value = headers.get(header::UPGRADE).cloned();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    if upgrade && let Some(value) = upgrade_value {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, value);
    }
}

/// Makes `request` what the backend gets, in place (the request is not moved): origin-form
/// target (`/path?query`), hop-by-hop headers gone, `Host` as asked, `X-Forwarded-*` set.
pub(super) fn to_upstream<B>(request: &mut Request<B>, peer: &Peer, host: &str, upgrade: bool) {
    let uri = request.uri_mut();
    if uri.scheme().is_some() || uri.authority().is_some() {
        // An absolute-form request (`GET http://host/path`): the backend gets the path only.
        let path = uri.path_and_query().map_or("/", |path| path.as_str());
        *uri = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
    }
    let headers = request.headers_mut();
    // One pass over the headers (a handful) finds what would otherwise take a lookup each:
    // the Host and how often it is there, a hop-by-hop header.
    let mut original_host = None;
    let mut hosts = 0;
    let mut hop_by_hop = false;
    for (name, value) in headers.iter() {
        if name == header::HOST {
            hosts += 1;
            original_host.get_or_insert_with(|| value.clone());
        } else if HOP_BY_HOP.contains(name) {
            hop_by_hop = true;
        }
    }
    if hop_by_hop {
        // The Connection header may name any header, Host and X-Forwarded-For too.
        remove_hop_by_hop(headers, upgrade);
    }
    let routed_host = original_host.or_else(|| HeaderValue::from_str(host).ok());
    if let Some(value) = &routed_host
        && (hosts != 1 || hop_by_hop)
    {
        // The app sees the Host that was routed: one, even if the request repeated it (or
        // had none, or named it in Connection).
        headers.insert(header::HOST, value.clone());
    }
    set_forwarded(headers, peer, routed_host);
}

#[cfg(test)]
mod tests {
    use super::super::forwarded::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_the_rest_stays() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer app-token"),
        );
        headers.insert("x-custom", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut headers, false);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort();
        assert_eq!(names, ["authorization", "x-custom"]);
    }

    #[test]
    fn the_backend_gets_one_host_the_path_and_forwarded_headers() {
        // From a client, and from a trusted proxy (whose X-Forwarded-For goes on).
        for (trusted, forwarded_for) in [(false, "10.1.2.3"), (true, "192.0.2.7, 10.1.2.3")] {
            let peer = Peer::new("10.1.2.3:5000".parse().unwrap(), trusted);
            let mut request = Request::builder()
                .uri("http://a.notes.example.com/x?y=1")
                .header(header::HOST, "a.notes.example.com")
                .header(header::HOST, "evil.example.org")
                .header(&X_FORWARDED_FOR, "192.0.2.7")
                .header(header::AUTHORIZATION, "Bearer t")
                .body(())
                .unwrap();
            to_upstream(&mut request, &peer, "a.notes.example.com", false);
            let headers = request.headers();
            assert_eq!(request.uri(), "/x?y=1");
            let hosts: Vec<_> = headers.get_all(header::HOST).iter().collect();
            assert_eq!(hosts, ["a.notes.example.com"]);
            assert_eq!(headers[&X_FORWARDED_HOST], "a.notes.example.com");
            assert_eq!(
                headers[&X_FORWARDED_FOR], forwarded_for,
                "trusted: {trusted}"
            );
            assert_eq!(headers[&X_FORWARDED_PROTO], "http");
            assert_eq!(headers[header::AUTHORIZATION], "Bearer t");
        }
    }

    #[test]
    fn forwarded_headers_are_set_by_the_proxy_whatever_a_client_says() {
        let peer = Peer::new("10.1.2.3:5000".parse().unwrap(), false);
        // What the backend gets of Host and X-Forwarded-*, one "name: value" per value.
        let upstream = |request: &mut Request<()>| -> Vec<String> {
            to_upstream(request, &peer, "a.notes.example.com", false);
            [
                &header::HOST,
                &X_FORWARDED_FOR,
                &X_FORWARDED_PROTO,
                &X_FORWARDED_HOST,
            ]
            .into_iter()
            .flat_map(|name| {
                request
                    .headers()
                    .get_all(name)
                    .iter()
                    .map(move |value| format!("{name}: {}", value.to_str().unwrap()))
            })
            .collect()
        };
        let expected = [
            "host: a.notes.example.com",
            "x-forwarded-for: 10.1.2.3",
            "x-forwarded-proto: http",
            "x-forwarded-host: a.notes.example.com",
        ];
        // The usual request: one Host, nothing forwarded yet.
        let mut plain = Request::builder()
            .header(header::HOST, "a.notes.example.com")
            .body(())
            .unwrap();
        assert_eq!(upstream(&mut plain), expected);
        // Claims of its own are replaced, not added to.
        let mut claims = Request::builder()
            .header(header::HOST, "a.notes.example.com")
            .header(&X_FORWARDED_FOR, "192.0.2.7")
            .header(&X_FORWARDED_FOR, "192.0.2.8")
            .header(&X_FORWARDED_PROTO, "https")
            .header(&X_FORWARDED_HOST, "bank.example.org")
            .body(())
            .unwrap();
        assert_eq!(upstream(&mut claims), expected);
        // A Connection header naming Host or X-Forwarded-For takes neither away.
        let mut claims = Request::builder()
            .header(header::HOST, "a.notes.example.com")
            .header(header::CONNECTION, "host, x-forwarded-for")
            .header(&X_FORWARDED_FOR, "192.0.2.7")
            .header(&X_FORWARDED_PROTO, "https")
            .header(&X_FORWARDED_HOST, "bank.example.org")
            .body(())
            .unwrap();
        assert_eq!(upstream(&mut claims), expected);
        // No Host (HTTP/1.0): the routed host.
        let mut bare = Request::builder().body(()).unwrap();
        assert_eq!(upstream(&mut bare), expected);
    }

    #[test]
    fn a_trusted_proxys_forwarded_headers_are_kept_unless_they_are_hop_by_hop() {
        let peer = Peer::new("127.0.0.1:5000".parse().unwrap(), true);
        let forwarded = |request: &mut Request<()>| -> Vec<String> {
            to_upstream(request, &peer, "a.notes.example.com", false);
            [&X_FORWARDED_FOR, &X_FORWARDED_PROTO, &X_FORWARDED_HOST]
                .into_iter()
                .map(|name| format!("{name}: {}", request.headers()[name].to_str().unwrap()))
                .collect()
        };
        let proxied = || {
            Request::builder()
                .header(header::HOST, "a.notes.example.com")
                .header(&X_FORWARDED_FOR, "203.0.113.9")
                .header(&X_FORWARDED_PROTO, "https")
                .header(&X_FORWARDED_HOST, "a.notes.example.com")
        };
        assert_eq!(
            forwarded(&mut proxied().body(()).unwrap()),
            [
                "x-forwarded-for: 203.0.113.9, 127.0.0.1",
                "x-forwarded-proto: https",
                "x-forwarded-host: a.notes.example.com",
            ]
        );
        let mut hop = proxied()
            .header(header::CONNECTION, "x-forwarded-for, x-forwarded-proto")
            .body(())
            .unwrap();
        assert_eq!(
            forwarded(&mut hop),
            [
                "x-forwarded-for: 127.0.0.1",
                "x-forwarded-proto: http",
                "x-forwarded-host: a.notes.example.com",
            ]
        );
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&headers));
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(headers[header::CONNECTION], "upgrade");
    }
}
