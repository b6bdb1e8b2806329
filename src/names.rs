//! Validated names: [`ServiceName`], [`InstanceId`], [`GroupName`] and [`InstanceKey`]
//! (`service:id`).
//!
//! Owns the one naming rule of ten: service names, instance ids and group names are DNS
//! labels. Pure: no
//! I/O. Every name that reaches a path, a process, a route or a metric label has been
//! validated here first, so the rest of the program never re-checks them.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a valid name looks like, for error messages and hints.
pub const NAME_RULE: &str =
    "names are DNS labels: 1-63 lowercase letters, digits or '-', not starting or ending with '-'";

const MAX_LABEL_LEN: usize = 63;

/// Why a string is not a valid DNS label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is empty")]
    Empty,
    #[error("is {len} characters long (at most 63)")]
    TooLong { len: usize },
    #[error("contains {found:?}")]
    BadChar { found: char },
    #[error("starts or ends with '-'")]
    EdgeHyphen,
}

/// Checks `text` against the DNS label rule `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
pub fn check_label(text: &str) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(found) = text
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(NameError::BadChar { found });
    }
    if text.len() > MAX_LABEL_LEN {
        return Err(NameError::TooLong { len: text.len() });
    }
    if text.starts_with('-') || text.ends_with('-') {
        return Err(NameError::EdgeHyphen);
    }
    Ok(())
}

/// A valid label close to `text` ("Bad_ID" -> "bad-id"), for "try ..." hints; `None` when
/// nothing sensible comes out or `text` is already valid.
pub fn suggest_label(text: &str) -> Option<String> {
    let mapped: String = text
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut collapsed = String::with_capacity(mapped.len());
    for c in mapped.chars() {
        if !(c == '-' && collapsed.ends_with('-')) {
            collapsed.push(c);
        }
    }
    let trimmed: String = collapsed
        .trim_matches('-')
        .chars()
        .take(MAX_LABEL_LEN)
        .collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    (check_label(&trimmed).is_ok() && trimmed != text).then_some(trimmed)
}

macro_rules! label_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// What this name is called in messages.
            pub const WHAT: &'static str = $what;

            pub fn new(text: &str) -> Result<Self, NameError> {
                check_label(text)?;
                Ok(Self(Arc::from(text)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(text: &str) -> Result<Self, NameError> {
                Self::new(text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::new(&text).map_err(|error| {
                    serde::de::Error::custom(format!("invalid {} {text:?}: {error}", $what))
                })
            }
        }
    };
}

label_newtype!(
    /// The name of a service template: `[service.NAME]`.
    ServiceName,
    "service name"
);
label_newtype!(
    /// The id of one tenant of a service: the `alice` of `notes:alice`.
    InstanceId,
    "instance id"
);
label_newtype!(
    /// The name of a group of services: `[group.NAME]`, selected as `group:NAME`.
    GroupName,
    "group name"
);

/// One instance: `service:id`. Orders by service, then id.
///
/// One pointer wide: its names are in one record its clones share, read as if they were its
/// own (`key.service`, `key.id`, by `Deref`). A key is held by each of the dozen tables of an
/// instance (desired, observed, the tasks, the routes, the ports, ...): with 10,000
/// instances, 24 bytes less in each is about 2 MB.
#[derive(Clone)]
pub struct InstanceKey(Arc<KeyNames>);

/// The names of an [`InstanceKey`].
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyNames {
    pub service: ServiceName,
    pub id: InstanceId,
}

impl std::ops::Deref for InstanceKey {
    type Target = KeyNames;

    fn deref(&self) -> &KeyNames {
        &self.0
    }
}

impl PartialEq for InstanceKey {
    fn eq(&self, other: &Self) -> bool {
        self.shares_names_with(other) || self.0 == other.0
    }
}

impl Eq for InstanceKey {}

impl PartialOrd for InstanceKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InstanceKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.shares_names_with(other) {
            return std::cmp::Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl std::hash::Hash for InstanceKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstanceKey")
            .field("service", &self.service)
            .field("id", &self.id)
            .finish()
    }
}

/// Why a `service:id` string is not an instance key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{text:?} is not of the form SERVICE:ID (for example notes:alice)")]
    MissingColon { text: String },
    #[error("invalid service name {text:?}: it {error}; {NAME_RULE}")]
    Service { text: String, error: NameError },
    #[error("invalid instance id {text:?}: it {error}; {NAME_RULE}")]
    Id { text: String, error: NameError },
}

impl InstanceKey {
    pub fn new(service: ServiceName, id: InstanceId) -> Self {
        Self(Arc::new(KeyNames { service, id }))
    }

    /// Whether the two are clones of one key (not only equal): they share their names.
    pub fn shares_names_with(&self, other: &InstanceKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Parses `service:id`.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (service, id) = text.split_once(':').ok_or_else(|| KeyError::MissingColon {
            text: text.to_string(),
        })?;
        let service = ServiceName::new(service).map_err(|error| KeyError::Service {
            text: service.to_string(),
            error,
        })?;
        let id = InstanceId::new(id).map_err(|error| KeyError::Id {
            text: id.to_string(),
            error,
        })?;
        Ok(Self::new(service, id))
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.id)
    }
}

impl FromStr for InstanceKey {
    type Err = KeyError;
    fn from_str(text: &str) -> Result<Self, KeyError> {
        Self::parse(text)
    }
}

impl Serialize for InstanceKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InstanceKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_dns_rule() {
        for good in ["a", "alice", "a-b", "0", "x1", &"a".repeat(63)] {
            assert_eq!(check_label(good), Ok(()), "{good}");
        }
        assert_eq!(check_label(""), Err(NameError::Empty));
        assert_eq!(
            check_label("Bad_ID"),
            Err(NameError::BadChar { found: 'B' })
        );
        assert_eq!(check_label("a.b"), Err(NameError::BadChar { found: '.' }));
        assert_eq!(check_label("../x"), Err(NameError::BadChar { found: '.' }));
        assert_eq!(check_label("-a"), Err(NameError::EdgeHyphen));
        assert_eq!(check_label("a-"), Err(NameError::EdgeHyphen));
        assert_eq!(
            check_label(&"a".repeat(64)),
            Err(NameError::TooLong { len: 64 })
        );
    }

    #[test]
    fn suggestions_are_valid_labels() {
        assert_eq!(suggest_label("Bad_ID").as_deref(), Some("bad-id"));
        assert_eq!(suggest_label("a.b").as_deref(), Some("a-b"));
        assert_eq!(suggest_label("../x").as_deref(), Some("x"));
        assert_eq!(suggest_label("alice"), None);
        assert_eq!(suggest_label("___"), None);
    }

    #[test]
    fn keys_parse_and_print() {
        let key = InstanceKey::parse("notes:alice").unwrap();
        assert_eq!(key.service.as_str(), "notes");
        assert_eq!(key.id.as_str(), "alice");
        assert_eq!(key.to_string(), "notes:alice");
        assert!(matches!(
            InstanceKey::parse("notes"),
            Err(KeyError::MissingColon { .. })
        ));
        assert!(matches!(
            InstanceKey::parse("notes:Alice"),
            Err(KeyError::Id { .. })
        ));
        assert!(matches!(
            InstanceKey::parse("no tes:alice"),
            Err(KeyError::Service { .. })
        ));
    }

    #[test]
    fn keys_order_by_service_then_id() {
        let mut keys: Vec<InstanceKey> = ["notes:b", "api:z", "notes:a"]
            .iter()
            .map(|text| InstanceKey::parse(text).unwrap())
            .collect();
        keys.sort();
        let printed: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(printed, ["api:z", "notes:a", "notes:b"]);
    }
}
