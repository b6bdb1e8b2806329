//! The flat view of a spec: a map from field path (`command`, `env.LOG_LEVEL`, `weight`) to a
//! scalar value. The planner diffs these maps; the observed-state record stores the map an
//! instance was last applied with.
//!
//! The field table below is the one place that says which field forces a restart, in which
//! order fields are shown and which are shown when an instance is created. Pure.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A scalar field value. Serialized as the plain JSON scalar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldValue {
    Text(String),
    Int(u64),
    /// A negative integer (`stop_order = -5`); others are `Int`, see [`FieldValue::integer`].
    Negative(i64),
    Bool(bool),
}

/// A field path. Known field names are static strings (no allocation per instance).
pub(crate) type FieldPath = Cow<'static, str>;

/// Field path -> value, ordered by path; [`rank`] gives the display order.
///
/// A sorted vector rather than a tree: every instance has one (two in the server: desired and
/// applied), so it must be small and cheap to build; lookups are binary searches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldMap {
    entries: Vec<(FieldPath, FieldValue)>,
}

impl FieldMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from entries in any order; for a path given twice, the last value wins.
    pub fn from_entries(mut entries: Vec<(FieldPath, FieldValue)>) -> Self {
        entries.reverse();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        Self { entries }
    }

    pub fn get(&self, path: &str) -> Option<&FieldValue> {
        self.entries
            .binary_search_by(|(key, _)| key.as_ref().cmp(path))
            .ok()
            .map(|index| &self.entries[index].1)
    }

    /// Sets `path` to `value`, replacing an earlier value.
    pub fn insert(&mut self, path: impl Into<FieldPath>, value: FieldValue) {
        let path = path.into();
        match self.entries.binary_search_by(|(key, _)| key.cmp(&path)) {
            Ok(index) => self.entries[index].1 = value,
            Err(index) => self.entries.insert(index, (path, value)),
        }
    }

    /// Entries ordered by path.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &FieldValue)> + Clone {
        self.entries
            .iter()
            .map(|(path, value)| (path.as_ref(), value))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The path as a static string when it is a known field name, so maps read back from the
/// observed-state record share their keys too.
pub(crate) fn intern(path: String) -> FieldPath {
    match INSTANCE_FIELDS.iter().find(|field| field.name == path) {
        Some(field) => Cow::Borrowed(field.name),
        None => Cow::Owned(path),
    }
}

fn intern_str(path: &str) -> FieldPath {
    match INSTANCE_FIELDS.iter().find(|field| field.name == path) {
        Some(field) => Cow::Borrowed(field.name),
        None => Cow::Owned(path.to_string()),
    }
}

impl<'a> IntoIterator for &'a FieldMap {
    type Item = (&'a str, &'a FieldValue);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (FieldPath, FieldValue)>,
        fn(&'a (FieldPath, FieldValue)) -> (&'a str, &'a FieldValue),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries
            .iter()
            .map(|(path, value)| (path.as_ref(), value))
    }
}

impl<K: Into<String>> FromIterator<(K, FieldValue)> for FieldMap {
    fn from_iter<I: IntoIterator<Item = (K, FieldValue)>>(iter: I) -> Self {
        Self::from_entries(
            iter.into_iter()
                .map(|(path, value)| (intern(path.into()), value))
                .collect(),
        )
    }
}

impl Serialize for FieldMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for FieldMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Reads a key without allocating when it is a known field name.
        struct PathSeed;
        impl<'de> de::DeserializeSeed<'de> for PathSeed {
            type Value = FieldPath;
            fn deserialize<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<FieldPath, D::Error> {
                deserializer.deserialize_str(self)
            }
        }
        impl Visitor<'_> for PathSeed {
            type Value = FieldPath;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field path")
            }
            fn visit_str<E: de::Error>(self, path: &str) -> Result<FieldPath, E> {
                Ok(intern_str(path))
            }
        }
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = FieldMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of field paths to values")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut access: A) -> Result<FieldMap, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(24));
                while let Some(path) = access.next_key_seed(PathSeed)? {
                    entries.push((path, access.next_value()?));
                }
                Ok(FieldMap::from_entries(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

/// What a change of the field does to a running instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The process must be restarted (replaced) for the change to apply.
    ForcesRestart,
    /// Applied to the running instance without a restart.
    InPlace,
}

/// A value hidden on create when the field has it (it is the default, and noise).
enum Quiet {
    Never,
    Text(&'static str),
    Int(u64),
}

struct FieldDef {
    /// The field name, or for a prefix field (`env`), the part before the dot.
    name: &'static str,
    effect: Effect,
    /// Shown in the plan when the instance is created.
    on_create: bool,
    quiet: Quiet,
}

const fn def(name: &'static str, effect: Effect, on_create: bool, quiet: Quiet) -> FieldDef {
    FieldDef {
        name,
        effect,
        on_create,
        quiet,
    }
}

use Effect::{ForcesRestart, InPlace};

/// Instance fields in display order.
const INSTANCE_FIELDS: &[FieldDef] = &[
    def("command", ForcesRestart, true, Quiet::Never),
    def("workdir", ForcesRestart, false, Quiet::Never),
    def("data_dir", ForcesRestart, false, Quiet::Never),
    def("env", ForcesRestart, true, Quiet::Never),
    def("isolation", ForcesRestart, true, Quiet::Text("process")),
    def("listen", ForcesRestart, true, Quiet::Text("port")),
    def("socket", ForcesRestart, false, Quiet::Never),
    def("user", ForcesRestart, true, Quiet::Never),
    def("memory_limit_mb", ForcesRestart, true, Quiet::Never),
    def("cpu_shares", ForcesRestart, true, Quiet::Never),
    def("pids_limit", ForcesRestart, true, Quiet::Never),
    def("health", InPlace, true, Quiet::Never),
    def("health_check", InPlace, true, Quiet::Never),
    def("health_interval", InPlace, false, Quiet::Never),
    def("health_timeout", InPlace, false, Quiet::Int(5)),
    def("health_retries", InPlace, false, Quiet::Int(3)),
    def("health_start_period", InPlace, false, Quiet::Int(0)),
    def("start_seconds", InPlace, false, Quiet::Int(1)),
    def("weight", InPlace, true, Quiet::Int(100)),
    def("idle_timeout", InPlace, true, Quiet::Int(0)),
    // When it starts: on the next start of ten, or its next creation.
    def("start", InPlace, true, Quiet::Never),
    def("startup_timeout", InPlace, false, Quiet::Never),
    def("request_timeout", InPlace, false, Quiet::Never),
    def("stop_signal", InPlace, false, Quiet::Never),
    def("stop_timeout", InPlace, false, Quiet::Never),
    def("restart", InPlace, false, Quiet::Never),
    def("storage_persist", InPlace, false, Quiet::Never),
    def("storage_quota_mb", InPlace, true, Quiet::Never),
    // ten writes these files from its capture: a change takes effect with the next line.
    def("stdout_log", InPlace, true, Quiet::Never),
    def("stderr_log", InPlace, true, Quiet::Never),
    def("log_max_bytes", InPlace, false, Quiet::Never),
    def("log_backups", InPlace, false, Quiet::Never),
    def("stop_order", InPlace, false, Quiet::Int(0)),
];

fn lookup(path: &str) -> Option<(usize, &'static FieldDef)> {
    let name = path.split_once('.').map_or(path, |(head, _)| head);
    INSTANCE_FIELDS
        .iter()
        .enumerate()
        .find(|(_, field)| field.name == name)
}

/// Whether changing `path` forces a restart. Unknown fields (from another version of ten)
/// conservatively do.
pub(crate) fn effect(path: &str) -> Effect {
    lookup(path).map_or(ForcesRestart, |(_, field)| field.effect)
}

/// Display position of `path`; unknown fields go last.
pub(crate) fn rank(path: &str) -> usize {
    lookup(path).map_or(INSTANCE_FIELDS.len(), |(index, _)| index)
}

/// Whether `path = value` is shown in the plan of a new instance.
pub(crate) fn shown_on_create(path: &str, value: &FieldValue) -> bool {
    let Some((_, field)) = lookup(path) else {
        return false;
    };
    let quiet = match (&field.quiet, value) {
        (Quiet::Text(text), FieldValue::Text(value)) => text == value,
        (Quiet::Int(int), FieldValue::Int(value)) => int == value,
        _ => false,
    };
    field.on_create && !quiet
}

/// Environment variable names that look secret: their values are never shown.
const SECRET_MARKERS: &[&str] = &["TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL"];

/// Whether the value of `path` must be masked as `(sensitive)`.
pub(crate) fn is_sensitive(path: &str) -> bool {
    path.strip_prefix("env.").is_some_and(|name| {
        let upper = name.to_ascii_uppercase();
        SECRET_MARKERS.iter().any(|marker| upper.contains(marker))
    })
}

impl fmt::Display for FieldValue {
    /// Shows the value as TOML would: strings quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Text(text) => write!(f, "{}", quote(text)),
            FieldValue::Int(value) => write!(f, "{value}"),
            FieldValue::Negative(value) => write!(f, "{value}"),
            FieldValue::Bool(value) => write!(f, "{value}"),
        }
    }
}

impl FieldValue {
    /// An integer that may be negative: `Int` unless it is below zero.
    pub fn integer(value: i64) -> Self {
        u64::try_from(value).map_or(FieldValue::Negative(value), FieldValue::Int)
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            FieldValue::Text(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<u64> {
        match self {
            FieldValue::Int(value) => Some(*value),
            _ => None,
        }
    }

    pub fn is_multiline(&self) -> bool {
        self.as_text().is_some_and(|text| text.contains('\n'))
    }
}

/// A double-quoted string with `"`, `\` and control characters escaped.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::Text(text) => serializer.serialize_str(text),
            FieldValue::Int(value) => serializer.serialize_u64(*value),
            FieldValue::Negative(value) => serializer.serialize_i64(*value),
            FieldValue::Bool(value) => serializer.serialize_bool(*value),
        }
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an integer or a boolean")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(value.to_string()))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<FieldValue, E> {
                Ok(FieldValue::Int(value))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<FieldValue, E> {
                Ok(FieldValue::integer(value))
            }
            fn visit_bool<E: de::Error>(self, value: bool) -> Result<FieldValue, E> {
                Ok(FieldValue::Bool(value))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_follow_the_design() {
        for path in [
            "command",
            "env.LOG_LEVEL",
            "workdir",
            "isolation",
            "memory_limit_mb",
            "cpu_shares",
            "pids_limit",
            "user",
            "future_field",
        ] {
            assert_eq!(effect(path), ForcesRestart, "{path}");
        }
        for path in [
            "weight",
            "idle_timeout",
            "health",
            "startup_timeout",
            "request_timeout",
            "stop_timeout",
        ] {
            assert_eq!(effect(path), InPlace, "{path}");
        }
    }

    #[test]
    fn secrets_are_recognised_by_name() {
        for path in [
            "env.API_TOKEN",
            "env.db_password",
            "env.SECRET",
            "env.AWS_ACCESS_KEY_ID",
        ] {
            assert!(is_sensitive(path), "{path}");
        }
        for path in ["env.LOG_LEVEL", "command", "weight"] {
            assert!(!is_sensitive(path), "{path}");
        }
    }

    #[test]
    fn values_round_trip_through_json() {
        let map: FieldMap = [
            ("c", FieldValue::Bool(true)),
            ("a", FieldValue::Text("x\ny".into())),
            ("b", FieldValue::Int(3)),
            ("d", FieldValue::integer(-5)),
        ]
        .into_iter()
        .collect();
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, r#"{"a":"x\ny","b":3,"c":true,"d":-5}"#);
        assert_eq!(serde_json::from_str::<FieldMap>(&json).unwrap(), map);
    }

    #[test]
    fn maps_stay_sorted_and_the_last_value_wins() {
        let mut map: FieldMap = [
            ("weight", FieldValue::Int(1)),
            ("command", FieldValue::Int(2)),
            ("weight", FieldValue::Int(3)),
        ]
        .into_iter()
        .collect();
        assert_eq!(map.get("weight"), Some(&FieldValue::Int(3)));
        map.insert("env.A", FieldValue::Bool(true));
        map.insert("command", FieldValue::Int(4));
        let paths: Vec<&str> = map.iter().map(|(path, _)| path).collect();
        assert_eq!(paths, ["command", "env.A", "weight"]);
        assert_eq!(map.get("command"), Some(&FieldValue::Int(4)));
        assert_eq!(map.get("missing"), None);
        assert!(matches!(intern("command".into()), Cow::Borrowed(_)));
    }

    #[test]
    fn quiet_defaults_are_hidden_on_create() {
        assert!(!shown_on_create("weight", &FieldValue::Int(100)));
        assert!(shown_on_create("weight", &FieldValue::Int(50)));
        assert!(shown_on_create("command", &FieldValue::Text("x".into())));
        assert!(!shown_on_create("stop_timeout", &FieldValue::Int(10)));
    }
}
