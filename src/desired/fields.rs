//! The flat view of a spec: a map from field path (`command`, `env.LOG_LEVEL`, `weight`) to a
//! scalar value. The planner diffs these maps; the observed-state record stores the map an
//! instance was last applied with.
//!
//! The field table below is the one place that says which field forces a restart, in which
//! order fields are shown and which are shown when an instance is created. Pure.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

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
/// Sorted vectors rather than trees: every instance has one (two in the server: desired and
/// applied), so it must be small and cheap to build; lookups are binary searches. The maps of
/// one service's instances differ in a few fields (the data directory, the socket): such a
/// map keeps the entries all of them share in one shared slice ([`FieldMap::sharing`]) and
/// only its own differences besides. With 10,000 instances of a service that is about 300
/// bytes each instead of 1.3 KB.
#[derive(Clone, Default)]
pub struct FieldMap {
    /// Entries shared with other maps, ordered by path.
    shared: Option<Arc<[(FieldPath, FieldValue)]>>,
    /// This map's own entries, ordered by path: a path the shared entries lack, or a value
    /// other than theirs, or `None` for a shared path this map does not have.
    own: Vec<(FieldPath, Option<FieldValue>)>,
    len: usize,
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
        Self {
            len: entries.len(),
            own: entries
                .into_iter()
                .map(|(path, value)| (path, Some(value)))
                .collect(),
            shared: None,
        }
    }

    /// These entries, as one slice to share between maps ([`FieldMap::sharing`]).
    pub fn to_shared(&self) -> Arc<[(FieldPath, FieldValue)]> {
        self.iter()
            .map(|(path, value)| (intern_str(path), value.clone()))
            .collect()
    }

    /// The same map, keeping of its entries only what differs from `shared`.
    pub fn sharing(&self, shared: &Arc<[(FieldPath, FieldValue)]>) -> Self {
        let mut own = Vec::new();
        let mut mine = self.iter().peekable();
        let mut theirs = shared.iter().peekable();
        loop {
            match (mine.peek(), theirs.peek()) {
                (None, None) => break,
                (Some((path, value)), None) => {
                    own.push((intern_str(path), Some((*value).clone())));
                    mine.next();
                }
                (None, Some((path, _))) => {
                    own.push((path.clone(), None));
                    theirs.next();
                }
                (Some((path, value)), Some((their_path, their_value))) => {
                    match (*path).cmp(their_path.as_ref()) {
                        std::cmp::Ordering::Less => {
                            own.push((intern_str(path), Some((*value).clone())));
                            mine.next();
                        }
                        std::cmp::Ordering::Greater => {
                            own.push((their_path.clone(), None));
                            theirs.next();
                        }
                        std::cmp::Ordering::Equal => {
                            if *value != their_value {
                                own.push((their_path.clone(), Some((*value).clone())));
                            }
                            mine.next();
                            theirs.next();
                        }
                    }
                }
            }
        }
        own.shrink_to_fit();
        Self {
            shared: Some(Arc::clone(shared)),
            own,
            len: self.len,
        }
    }

    pub fn get(&self, path: &str) -> Option<&FieldValue> {
        match self.own.binary_search_by(|(key, _)| key.as_ref().cmp(path)) {
            Ok(index) => self.own[index].1.as_ref(),
            Err(_) => {
                let shared = self.shared.as_deref()?;
                shared
                    .binary_search_by(|(key, _)| key.as_ref().cmp(path))
                    .ok()
                    .map(|index| &shared[index].1)
            }
        }
    }

    /// Sets `path` to `value`, replacing an earlier value.
    pub fn insert(&mut self, path: impl Into<FieldPath>, value: FieldValue) {
        let path = path.into();
        if self.get(&path).is_none() {
            self.len += 1;
        }
        match self.own.binary_search_by(|(key, _)| key.cmp(&path)) {
            Ok(index) => self.own[index].1 = Some(value),
            Err(index) => self.own.insert(index, (path, Some(value))),
        }
    }

    /// Entries ordered by path.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            own: &self.own,
            shared: self.shared.as_deref().unwrap_or_default(),
            left: self.len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The entries of a [`FieldMap`] ordered by path: its own and the shared ones merged.
#[derive(Clone)]
pub struct Iter<'a> {
    own: &'a [(FieldPath, Option<FieldValue>)],
    shared: &'a [(FieldPath, FieldValue)],
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a FieldValue);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_own = match (self.own.first(), self.shared.first()) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((mine, _)), Some((theirs, _))) => {
                    if mine == theirs {
                        // Own replaces (or removes) the shared entry.
                        self.shared = &self.shared[1..];
                    }
                    mine <= theirs
                }
            };
            if take_own {
                let ((path, value), rest) = self.own.split_first()?;
                self.own = rest;
                if let Some(value) = value {
                    self.left -= 1;
                    return Some((path.as_ref(), value));
                }
            } else {
                let ((path, value), rest) = self.shared.split_first()?;
                self.shared = rest;
                self.left -= 1;
                return Some((path.as_ref(), value));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl PartialEq for FieldMap {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for FieldMap {}

impl fmt::Debug for FieldMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
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
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
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
    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            "[a-c]{0,2}".prop_map(FieldValue::Text),
            (0u64..3).prop_map(FieldValue::Int),
            any::<bool>().prop_map(FieldValue::Bool),
        ]
    }

    fn map() -> impl Strategy<Value = FieldMap> {
        // Paths from a small set, known names among them, so maps overlap.
        let path = prop_oneof![
            Just("command".to_string()),
            Just("data_dir".to_string()),
            Just("weight".to_string()),
            "env\\.[A-C]",
        ];
        proptest::collection::vec((path, value()), 0..8).prop_map(|entries| {
            FieldMap::from_entries(
                entries
                    .into_iter()
                    .map(|(path, value)| (intern(path), value))
                    .collect(),
            )
        })
    }

    proptest! {
        /// A map that shares another's entries says exactly what it said on its own: the
        /// same entries in the same order, the same lookups, the same length; and an insert
        /// into it acts as on the map of its own.
        #[test]
        fn a_map_sharing_entries_is_the_same_map(
            mine in map(),
            theirs in map(),
            insert in ("env\\.[A-D]", value()),
        ) {
            let shared = theirs.to_shared();
            let mut sharing = mine.sharing(&shared);
            prop_assert_eq!(&sharing, &mine);
            prop_assert_eq!(sharing.len(), mine.len());
            prop_assert_eq!(sharing.iter().len(), mine.iter().count());
            prop_assert!(sharing.iter().eq(mine.iter()));
            for (path, _) in theirs.iter().chain(mine.iter()) {
                prop_assert_eq!(sharing.get(path), mine.get(path), "{}", path);
            }
            let mut alone = mine.clone();
            alone.insert(insert.0.clone(), insert.1.clone());
            sharing.insert(insert.0, insert.1);
            prop_assert_eq!(sharing.len(), alone.len());
            prop_assert!(sharing.iter().eq(alone.iter()));
        }
    }

    #[test]
    fn a_map_sharing_an_equal_map_keeps_nothing_of_its_own() {
        let mine: FieldMap = [
            ("command", FieldValue::Text("./app".into())),
            ("data_dir", FieldValue::Text("/d/a".into())),
        ]
        .into_iter()
        .collect();
        let mut theirs = mine.clone();
        let sharing = mine.sharing(&theirs.to_shared());
        assert!(sharing.own.is_empty());
        theirs.insert("data_dir", FieldValue::Text("/d/b".into()));
        let sharing = mine.sharing(&theirs.to_shared());
        assert_eq!(sharing.own.len(), 1, "{:?}", sharing.own);
        assert_eq!(sharing, mine);
    }

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
