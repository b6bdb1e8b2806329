//! The flat view of a spec: a map from field path (`command`, `env.LOG_LEVEL`, `weight`) to a
//! scalar value. The planner diffs these maps; the observed-state record stores the map an
//! instance was last applied with.
//!
//! The field table below is the one place that says which field forces a restart, in which
//! order fields are shown and which are shown when an instance is created. Pure.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A scalar field value. Serialized as the plain JSON scalar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldValue {
    Text(String),
    Int(u64),
    Bool(bool),
}

/// Field path -> value. Ordered by path; [`rank`] gives the display order.
pub type FieldMap = BTreeMap<String, FieldValue>;

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
    def("weight", InPlace, true, Quiet::Int(100)),
    def("idle_timeout", InPlace, true, Quiet::Int(0)),
    def("startup_timeout", InPlace, false, Quiet::Never),
    def("request_timeout", InPlace, false, Quiet::Never),
    def("stop_signal", InPlace, false, Quiet::Never),
    def("stop_timeout", InPlace, false, Quiet::Never),
    def("restart", InPlace, false, Quiet::Never),
    def("storage_persist", InPlace, false, Quiet::Never),
    def("storage_quota_mb", InPlace, true, Quiet::Never),
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
pub fn effect(path: &str) -> Effect {
    lookup(path).map_or(ForcesRestart, |(_, field)| field.effect)
}

/// Display position of `path`; unknown fields go last.
pub fn rank(path: &str) -> usize {
    lookup(path).map_or(INSTANCE_FIELDS.len(), |(index, _)| index)
}

/// Whether `path = value` is shown in the plan of a new instance.
pub fn shown_on_create(path: &str, value: &FieldValue) -> bool {
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
pub fn is_sensitive(path: &str) -> bool {
    path.strip_prefix("env.").is_some_and(|name| {
        let upper = name.to_ascii_uppercase();
        SECRET_MARKERS.iter().any(|marker| upper.contains(marker))
    })
}

/// Sorts paths into display order.
pub fn sort_for_display(paths: &mut [&str]) {
    paths.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
}

impl fmt::Display for FieldValue {
    /// Shows the value as TOML would: strings quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Text(text) => write!(f, "{}", quote(text)),
            FieldValue::Int(value) => write!(f, "{value}"),
            FieldValue::Bool(value) => write!(f, "{value}"),
        }
    }
}

impl FieldValue {
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
pub fn quote(text: &str) -> String {
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
                f.write_str("a string, a non-negative integer or a boolean")
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
                u64::try_from(value)
                    .map(FieldValue::Int)
                    .map_err(|_| E::custom("negative integer"))
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
    fn display_order_puts_command_first_and_env_sorted() {
        let mut paths = vec!["weight", "env.B", "command", "env.A", "zzz"];
        sort_for_display(&mut paths);
        assert_eq!(paths, ["command", "env.A", "env.B", "weight", "zzz"]);
    }

    #[test]
    fn values_round_trip_through_json() {
        let map: FieldMap = [
            ("a".to_string(), FieldValue::Text("x\ny".into())),
            ("b".to_string(), FieldValue::Int(3)),
            ("c".to_string(), FieldValue::Bool(true)),
        ]
        .into();
        let json = serde_json::to_string(&map).unwrap();
        assert_eq!(json, r#"{"a":"x\ny","b":3,"c":true}"#);
        assert_eq!(serde_json::from_str::<FieldMap>(&json).unwrap(), map);
    }

    #[test]
    fn quiet_defaults_are_hidden_on_create() {
        assert!(!shown_on_create("weight", &FieldValue::Int(100)));
        assert!(shown_on_create("weight", &FieldValue::Int(50)));
        assert!(shown_on_create("command", &FieldValue::Text("x".into())));
        assert!(!shown_on_create("stop_timeout", &FieldValue::Int(10)));
    }
}
