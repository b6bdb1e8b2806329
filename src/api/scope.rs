//! Who may do what: a token's scope, and whether it meets what a route needs of it
//! (`route::Route::need`). Pure: no I/O.
//!
//! An admin token may do everything. A tenant token (one instance) may only read its own
//! instance (`GET /api/instances` lists only it, `GET /api/instances/{it}`, `/health`), restart
//! it, and read its own logs and events (streams too); with no instance asked for, those
//! narrow to its own, and another instance or `all` is refused (403) before anything streams.

use std::fmt;

use hyper::Method;

use super::error::CallError;
use crate::names::InstanceKey;

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Admin,
    /// One instance's own routes.
    Tenant(InstanceKey),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Tenant(key) => write!(f, "tenant {key}"),
        }
    }
}

/// What a route needs of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    Admin,
    /// This instance's own token (or an admin token).
    Instance(InstanceKey),
    /// Any token; a tenant's answer is narrowed to its own instance (listing, logs, events).
    Narrowed,
}

/// The instance filter a request asked for (`?instance=`, or `?process=&id=` for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Unspecified,
    /// `instance=all`.
    All,
    One(InstanceKey),
}

/// Refuses (403) what `scope` may not do; says which scope the token has and what is needed.
pub(crate) fn authorize(
    scope: &Scope,
    need: &Need,
    method: &Method,
    path: &str,
) -> Result<(), CallError> {
    let Scope::Tenant(own) = scope else {
        return Ok(());
    };
    match need {
        Need::Narrowed => Ok(()),
        Need::Instance(key) if key == own => Ok(()),
        Need::Instance(key) => Err(forbidden(
            scope,
            format!("{method} /api/{path} needs an admin token or {key}'s own"),
        )),
        Need::Admin => Err(forbidden(
            scope,
            format!("{method} /api/{path} needs an admin token"),
        )),
    }
}

impl Scope {
    /// The instance a listing, log or event request is narrowed to (`None`: all of them).
    pub fn narrow(&self, filter: Filter) -> Result<Option<InstanceKey>, CallError> {
        match (self, filter) {
            (Scope::Admin, Filter::Unspecified | Filter::All) => Ok(None),
            (Scope::Admin, Filter::One(key)) => Ok(Some(key)),
            (Scope::Tenant(own), Filter::Unspecified) => Ok(Some(own.clone())),
            (Scope::Tenant(own), Filter::One(key)) if key == *own => Ok(Some(key)),
            (Scope::Tenant(_), Filter::One(key)) => Err(forbidden(
                self,
                format!("{key}'s logs and events need an admin token or {key}'s own"),
            )),
            (Scope::Tenant(_), Filter::All) => Err(forbidden(
                self,
                "the logs and events of all instances need an admin token".to_string(),
            )),
        }
    }

    /// Whether this scope sees `key` in listings.
    pub fn sees(&self, key: &InstanceKey) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Tenant(own) => own == key,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Scope::Admin)
    }
}

pub(crate) fn forbidden(scope: &Scope, needed: String) -> CallError {
    CallError::new(403, format!("this token has scope {scope}; {needed}")).hint(
        "use the admin token (the server's {data_dir}/api_token), or a tenant token made by `ten token-gen --tenant S:ID` for that instance",
    )
}

/// `notes:alice`, also percent-encoded (`notes%3Aalice`), as a key.
pub(crate) fn decode_key(text: &str) -> Result<InstanceKey, crate::names::KeyError> {
    let decoded = form_urlencoded::parse(format!("k={text}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    InstanceKey::parse(&decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> InstanceKey {
        InstanceKey::parse(text).unwrap()
    }

    #[test]
    fn logs_and_events_narrow_to_the_tenants_own_instance() {
        let alice = Scope::Tenant(key("notes:alice"));
        assert_eq!(
            alice.narrow(Filter::Unspecified).unwrap(),
            Some(key("notes:alice"))
        );
        assert_eq!(
            alice.narrow(Filter::One(key("notes:alice"))).unwrap(),
            Some(key("notes:alice"))
        );
        let other = alice.narrow(Filter::One(key("notes:bob"))).unwrap_err();
        assert_eq!(other.status, 403);
        assert!(
            other.message.contains("scope tenant notes:alice"),
            "{}",
            other.message
        );
        assert_eq!(alice.narrow(Filter::All).unwrap_err().status, 403);
        assert_eq!(Scope::Admin.narrow(Filter::All).unwrap(), None);
        assert_eq!(Scope::Admin.narrow(Filter::Unspecified).unwrap(), None);
    }
}
