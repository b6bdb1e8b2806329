//! The check of a request's bearer token. The server keeps only the hashes of the token store
//! (`tokens`), in an `ArcSwap` snapshot (no lock to read); a check hashes the presented token,
//! looks the hash up and compares it in constant time. Failures are counted per client address
//! by the `limiter`.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper::Response;
use hyper::header::{self, AUTHORIZATION, HeaderMap, HeaderValue};

use crate::body::Body;

use super::error::{CallError, failure};
use super::limiter::{Limiter, Verdict};
pub(crate) use super::scope::Scope;
pub(crate) use super::tokens::{Issued, TokenError, token_path};
use super::tokens::{
    STORE_FORMAT, TokenStore, TokenTable, constant_time_eq, digest, is_strong, issue_in,
    issue_locked, lock_store, revoke,
};

/// Why a request is refused before any route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// 401: no token, or not a valid one.
    Unauthorized,
    /// 429: this address failed too often; try again after this long.
    Limited { retry_after: Duration },
}

/// The server's view of the tokens.
pub(crate) struct Auth {
    data_dir: PathBuf,
    table: ArcSwap<TokenTable>,
    limiter: Limiter,
}

impl Auth {
    /// Loads the store of `data_dir`. When it has no admin token, takes the one in
    /// `api_token` (a data directory from before the store), or makes one and writes
    /// `api_token`. Returns whether a new admin token was made.
    pub(crate) fn load_or_create(data_dir: &Path) -> io::Result<(Auth, bool)> {
        Self::open(data_dir).map_err(io::Error::other)
    }

    fn open(data_dir: &Path) -> Result<(Auth, bool), TokenError> {
        let (store, created) = {
            let lock = lock_store(data_dir)?;
            let mut store = TokenStore::read(data_dir)?;
            let path = token_path(data_dir);
            let legacy = fs::read_to_string(&path)
                .ok()
                .map(|text| text.trim().to_string());
            match (store.find(&Scope::Admin), legacy) {
                (Some(admin), legacy) => {
                    let matches = legacy.as_deref().is_some_and(|token| {
                        admin
                            .digest()
                            .is_some_and(|stored| constant_time_eq(&stored, &digest(token)))
                    });
                    if !matches {
                        tracing::warn!(file = %path.display(), "the admin token file is missing or stale; `ten token-gen` makes a new admin token and writes it there");
                    }
                    (store, false)
                }
                (None, Some(token)) if is_strong(&token) => {
                    store.format_version = STORE_FORMAT;
                    store.put(&Scope::Admin, &token);
                    store.write(data_dir)?;
                    tracing::info!(file = %path.display(), "took the admin token from the token file into the token store (hash only)");
                    (store, false)
                }
                (None, legacy) => {
                    if legacy.is_some_and(|token| !token.is_empty()) {
                        tracing::warn!(file = %path.display(), "the token file does not hold a token ten made (64 hex digits); replacing it with a new one");
                    }
                    issue_locked(data_dir, &mut store, &Scope::Admin, &lock)?;
                    (store, true)
                }
            }
        };
        Ok((
            Auth {
                data_dir: data_dir.to_path_buf(),
                table: ArcSwap::from_pointee(store.table()),
                limiter: Limiter::default(),
            },
            created,
        ))
    }

    /// The scope of `token`, if it is valid.
    pub(crate) fn verify(&self, token: &str) -> Option<Scope> {
        self.table.load().check(token)
    }

    /// The scope of the request's bearer token (`Authorization: Bearer TOKEN`). A failure is
    /// counted against `client` (the TCP peer, or the client a trusted proxy names); see
    /// `limiter` for why a valid token is never refused.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
        now: Instant,
    ) -> Result<Scope, Refused> {
        if let Some(scope) = bearer(headers).and_then(|token| self.verify(token)) {
            return Ok(scope);
        }
        let metrics = crate::metrics::global();
        metrics.auth_failed();
        match self.limiter.failed(client, now) {
            Verdict::Unauthorized => Err(Refused::Unauthorized),
            Verdict::Limited { retry_after, first } => {
                metrics.auth_limited();
                if first {
                    tracing::warn!(%client, "too many failed API token checks; answering 429 for {}", humantime::format_duration(retry_after));
                }
                Err(Refused::Limited { retry_after })
            }
        }
    }

    /// A new token for `scope` (replacing its previous one), valid at once. Blocking I/O.
    pub(crate) fn issue(&self, scope: &Scope) -> Result<Issued, TokenError> {
        let (issued, store) = issue_in(&self.data_dir, scope)?;
        self.table.store(Arc::new(store.table()));
        Ok(issued)
    }

    /// Removes the token of `scope`, if any, at once. Blocking I/O.
    pub(crate) fn revoke(&self, scope: &Scope) -> Result<bool, TokenError> {
        let (removed, store) = revoke(&self.data_dir, scope)?;
        self.table.store(Arc::new(store.table()));
        Ok(removed)
    }
}

/// The token of `Authorization: Bearer TOKEN` (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The answer to a request refused before any route: 401, or 429 with Retry-After. A 429
/// closes the connection, so a flood costs the sender a new connection per attempt.
pub(crate) fn refusal(refused: Refused) -> Response<Body> {
    match refused {
        Refused::Unauthorized => failure(CallError::new(401, "missing or invalid API token").hint(
            "send `Authorization: Bearer TOKEN`; the CLI reads it from --token, TENEMENT_TOKEN or {data_dir}/api_token",
        )),
        Refused::Limited { retry_after } => {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let mut reply = failure(
                CallError::new(
                    429,
                    format!(
                        "too many failed API token checks from this address; try again in {seconds} s"
                    ),
                )
                .hint("a valid token is still accepted; check --token, TENEMENT_TOKEN or {data_dir}/api_token"),
            );
            let headers = reply.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            reply
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::tokens::{PRIVATE_DIR, hex, issue, new_token, store_path};
    use crate::names::InstanceKey;
    use std::net::Ipv4Addr;
    use std::os::unix::fs::PermissionsExt;

    fn bearer_of(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        headers
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn admin_token(dir: &Path) -> String {
        fs::read_to_string(token_path(dir))
            .unwrap()
            .trim()
            .to_string()
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn the_admin_token_is_created_once_private_and_stored_as_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, created) = Auth::load_or_create(dir.path()).unwrap();
        assert!(created);
        let token = admin_token(dir.path());
        assert!(is_strong(&token), "{token}");
        assert_eq!(mode(&token_path(dir.path())), 0o600);
        assert_eq!(mode(&store_path(dir.path())), 0o600);
        assert_eq!(mode(&dir.path().join(PRIVATE_DIR)), 0o700);
        let stored = fs::read_to_string(store_path(dir.path())).unwrap();
        assert!(!stored.contains(&token), "{stored}");
        assert!(stored.contains(&hex(&digest(&token))), "{stored}");
        assert_eq!(auth.verify(&token), Some(Scope::Admin));

        let (again, created) = Auth::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(admin_token(dir.path()), token, "kept");
        let now = Instant::now();
        assert_eq!(
            again.authenticate(&bearer_of(&token), LOCAL, now),
            Ok(Scope::Admin)
        );
        assert_eq!(
            again.authenticate(&HeaderMap::new(), LOCAL, now),
            Err(Refused::Unauthorized)
        );
        assert_eq!(
            again.authenticate(&bearer_of("nope"), LOCAL, now),
            Err(Refused::Unauthorized)
        );
        let mut lowercase = HeaderMap::new();
        lowercase.insert(AUTHORIZATION, format!("bearer {token}").parse().unwrap());
        assert_eq!(again.authenticate(&lowercase, LOCAL, now), Ok(Scope::Admin));
    }

    #[test]
    fn an_older_token_file_is_taken_into_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let old = new_token().unwrap();
        fs::write(token_path(dir.path()), format!("{old}\n")).unwrap();
        let (auth, created) = Auth::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(auth.verify(&old), Some(Scope::Admin));
        assert!(
            TokenStore::read(dir.path())
                .unwrap()
                .find(&Scope::Admin)
                .is_some()
        );
    }

    #[test]
    fn a_weak_token_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(token_path(dir.path()), "secret\n").unwrap();
        let (auth, created) = Auth::load_or_create(dir.path()).unwrap();
        assert!(created);
        assert_eq!(auth.verify("secret"), None);
        assert_eq!(auth.verify(&admin_token(dir.path())), Some(Scope::Admin));
    }

    #[test]
    fn rotation_replaces_the_admin_token_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = Auth::load_or_create(dir.path()).unwrap();
        let old = admin_token(dir.path());
        let issued = auth.issue(&Scope::Admin).unwrap();
        assert_eq!(auth.verify(&issued.token), Some(Scope::Admin));
        assert_eq!(auth.verify(&old), None);
        assert_eq!(issued.file, Some(token_path(dir.path())));
        assert_eq!(admin_token(dir.path()), issued.token);
        assert_eq!(mode(&token_path(dir.path())), 0o600);
        let store = TokenStore::read(dir.path()).unwrap();
        assert_eq!(store.tokens.len(), 1, "one admin token");
    }

    #[test]
    fn tenant_tokens_are_scoped_replaced_and_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = Auth::load_or_create(dir.path()).unwrap();
        let alice = Scope::Tenant(InstanceKey::parse("notes:alice").unwrap());
        let bob = Scope::Tenant(InstanceKey::parse("notes:bob").unwrap());
        let first = auth.issue(&alice).unwrap();
        assert_eq!(first.file, None);
        let for_bob = auth.issue(&bob).unwrap();
        assert_eq!(auth.verify(&first.token), Some(alice.clone()));
        let second = auth.issue(&alice).unwrap();
        assert_eq!(auth.verify(&first.token), None, "replaced");
        assert_eq!(auth.verify(&second.token), Some(alice.clone()));
        assert_eq!(auth.verify(&for_bob.token), Some(bob.clone()));
        let stored = fs::read_to_string(store_path(dir.path())).unwrap();
        for token in [&first.token, &second.token, &for_bob.token] {
            assert!(!stored.contains(token.as_str()));
        }
        assert!(stored.contains("\"instance\": \"notes:alice\""), "{stored}");
        assert!(auth.revoke(&alice).unwrap());
        assert_eq!(auth.verify(&second.token), None);
        assert!(!auth.revoke(&alice).unwrap());
        // A server started later sees the same tokens.
        let (again, _) = Auth::load_or_create(dir.path()).unwrap();
        assert_eq!(again.verify(&for_bob.token), Some(bob));
    }

    #[test]
    fn offline_changes_and_the_servers_do_not_overwrite_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _) = Auth::load_or_create(dir.path()).unwrap();
        let alice = Scope::Tenant(InstanceKey::parse("notes:alice").unwrap());
        let offline = issue(dir.path(), &alice).unwrap();
        let bob = Scope::Tenant(InstanceKey::parse("notes:bob").unwrap());
        server.issue(&bob).unwrap();
        assert_eq!(
            server.verify(&offline.token),
            Some(alice),
            "the server read the store before changing it"
        );
    }

    #[test]
    fn a_flood_of_failures_is_limited_but_valid_tokens_still_pass() {
        let dir = tempfile::tempdir().unwrap();
        let (auth, _) = Auth::load_or_create(dir.path()).unwrap();
        let token = admin_token(dir.path());
        let attacker = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let now = Instant::now();
        let refusals: Vec<Refused> = (0..1000)
            .map(|_| {
                auth.authenticate(&bearer_of("guess"), attacker, now)
                    .unwrap_err()
            })
            .collect();
        assert!(refusals[..10].iter().all(|r| *r == Refused::Unauthorized));
        assert!(
            refusals[10..]
                .iter()
                .all(|r| matches!(r, Refused::Limited { .. }))
        );
        assert_eq!(
            auth.authenticate(&bearer_of("guess"), LOCAL, now),
            Err(Refused::Unauthorized),
            "another address is not limited"
        );
        assert_eq!(
            auth.authenticate(&bearer_of(&token), attacker, now),
            Ok(Scope::Admin),
            "a valid token passes even from the limited address"
        );
        let later = now + Duration::from_secs(61);
        assert_eq!(
            auth.authenticate(&bearer_of("guess"), attacker, later),
            Err(Refused::Unauthorized),
            "the block ends"
        );
    }
}
