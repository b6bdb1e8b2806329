//! The dashboard's sessions: a pasted token exchanged for a random session id (the cookie)
//! and a CSRF token (the hidden field of every form). Kept in memory only, each for
//! [`SESSION_LIFETIME`], at most [`MAX_SESSIONS`] at once (a new one evicts the expired, else
//! the one closest to its end). The map is keyed by the SHA-256 of the id, so a lookup takes
//! the same path whatever id is presented, and the ids themselves are nowhere in memory but
//! in the cookies. The token is kept with the session and checked again on every request:
//! a token rotated or revoked ends its sessions at once. Must not import `server`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::api::scope::Scope;
use crate::api::tokens::{constant_time_eq, new_token};

/// How long a session lasts from the login.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// Most sessions kept at once.
pub(crate) const MAX_SESSIONS: usize = 1024;

/// The cookie that carries the session id.
pub(crate) const COOKIE: &str = "ten_session";

#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("cannot make a session id: {0}")]
    Random(String),
}

/// What a request's session says: whose it is and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token pasted at the login (checked again on every request).
    pub token: String,
    pub scope: Scope,
    pub csrf: String,
    /// A message for the next page (what an action did), shown once.
    pub flash: Option<Flash>,
}

/// The outcome of an action, shown on the page after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    pub ok: bool,
    pub message: String,
}

struct Entry {
    session: Session,
    expires: Instant,
}

#[derive(Default)]
pub(crate) struct Sessions {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// A new session for `token` of `scope`; its id (for the cookie).
    pub(crate) fn create(
        &self,
        token: String,
        scope: Scope,
        now: Instant,
    ) -> Result<String, SessionError> {
        let id = new_token().map_err(|error| SessionError::Random(error.to_string()))?;
        let csrf = new_token().map_err(|error| SessionError::Random(error.to_string()))?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_SESSIONS {
            entries.retain(|_, entry| entry.expires > now);
        }
        if entries.len() >= MAX_SESSIONS {
            let oldest = entries
                .iter()
                .min_by_key(|(_, entry)| entry.expires)
                .map(|(key, _)| *key);
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            key(&id),
            Entry {
                session: Session {
                    token,
                    scope,
                    csrf,
                    flash: None,
                },
                expires: now + SESSION_LIFETIME,
            },
        );
        Ok(id)
    }

    /// The live session of `id`, its flash taken (shown once). An expired one is removed.
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = key(id);
        match entries.get_mut(&key) {
            Some(entry) if entry.expires > now => {
                let mut session = entry.session.clone();
                session.flash = entry.session.flash.take();
                Some(session)
            }
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keeps `flash` for the next page of session `id`.
    pub(crate) fn set_flash(&self, id: &str, flash: Flash) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get_mut(&key(id)) {
            entry.session.flash = Some(flash);
        }
    }

    /// Ends session `id` (logout, or its token is no longer valid).
    pub(crate) fn remove(&self, id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&key(id));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token.
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        constant_time_eq(presented.as_bytes(), self.csrf.as_bytes())
    }
}

/// The session id of a `Cookie` header's value, if it carries one.
pub(crate) fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value of a new session (`Secure` when served over TLS).
pub(crate) fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::InstanceKey;

    #[test]
    fn a_session_lives_until_it_expires_and_is_found_by_its_id_only() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let id = sessions.create("t".into(), Scope::Admin, now).unwrap();
        assert_eq!(id.len(), 64);
        let session = sessions.get(&id, now).unwrap();
        assert_eq!(session.scope, Scope::Admin);
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(session.csrf, id);
        assert!(sessions.get("nope", now).is_none());
        assert!(sessions.get(&id[..63], now).is_none());
        let later = now + SESSION_LIFETIME;
        assert!(sessions.get(&id, later).is_none(), "expired");
        assert_eq!(sessions.len(), 0, "an expired session is dropped");
    }

    #[test]
    fn csrf_tokens_are_per_session() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let alice = Scope::Tenant(InstanceKey::parse("notes:alice").unwrap());
        let one = sessions.create("a".into(), alice, now).unwrap();
        let two = sessions.create("b".into(), Scope::Admin, now).unwrap();
        let (one, two) = (
            sessions.get(&one, now).unwrap(),
            sessions.get(&two, now).unwrap(),
        );
        assert!(one.csrf_matches(&one.csrf));
        assert!(!one.csrf_matches(&two.csrf));
        assert!(!one.csrf_matches(""));
    }

    #[test]
    fn the_store_is_bounded_and_evicts_the_oldest() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let first = sessions.create("t".into(), Scope::Admin, start).unwrap();
        for n in 1..=MAX_SESSIONS as u64 {
            let at = start + Duration::from_millis(n);
            sessions.create("t".into(), Scope::Admin, at).unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.get(&first, start).is_none(), "the oldest went");
    }

    #[test]
    fn a_flash_is_shown_once_and_logout_ends_the_session() {
        let sessions = Sessions::default();
        let now = Instant::now();
        let id = sessions.create("t".into(), Scope::Admin, now).unwrap();
        let flash = Flash {
            ok: true,
            message: "restarted".into(),
        };
        sessions.set_flash(&id, flash.clone());
        assert_eq!(sessions.get(&id, now).unwrap().flash, Some(flash));
        assert_eq!(sessions.get(&id, now).unwrap().flash, None);
        sessions.remove(&id);
        assert!(sessions.get(&id, now).is_none());
    }

    #[test]
    fn cookies_are_read_and_written_strictly() {
        assert_eq!(cookie_value("a=b; ten_session=abc"), Some("abc"));
        assert_eq!(cookie_value("ten_session="), None);
        assert_eq!(cookie_value("other=1"), None);
        let cookie = set_cookie("abc", false);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
