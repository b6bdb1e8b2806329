//! JSON values, as pm2's ecosystem file is read, and YAML made into them (process-compose),
//! so that both readers walk the same kind of value. YAML is read by `saphyr` (YAML 1.2),
//! with its `<<` merge keys applied as process-compose's YAML library does.

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{Map, Value};

use super::report::{Item, Report};

/// The first document of a YAML text, as a JSON value.
pub(crate) fn from_yaml(text: &str) -> Result<Value, String> {
    let documents = Yaml::load_from_str(text).map_err(|error| error.to_string())?;
    Ok(documents.first().map_or(Value::Null, to_json))
}

fn to_json(yaml: &Yaml<'_>) -> Value {
    match yaml {
        Yaml::Value(scalar) => scalar_to_json(scalar),
        Yaml::Representation(text, _, _) => Value::String(text.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(mapping) => {
            let mut object = Map::new();
            let mut merged = Vec::new();
            for (key, value) in mapping {
                let key = key_text(key);
                if key == "<<" {
                    merged.push(to_json(value));
                } else {
                    object.insert(key, to_json(value));
                }
            }
            // Keys written in the mapping win over merged ones; earlier merges over later.
            for merge in merged {
                let sources = match merge {
                    Value::Array(items) => items,
                    other => vec![other],
                };
                for source in sources {
                    if let Value::Object(source) = source {
                        for (key, value) in source {
                            object.entry(key).or_insert(value);
                        }
                    }
                }
            }
            Value::Object(object)
        }
        Yaml::Tagged(_, inner) => to_json(inner),
        Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

fn scalar_to_json(scalar: &Scalar<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(value) => Value::Bool(*value),
        Scalar::Integer(value) => Value::from(*value),
        Scalar::FloatingPoint(value) => {
            serde_json::Number::from_f64(value.into_inner()).map_or(Value::Null, Value::Number)
        }
        Scalar::String(text) => Value::String(text.to_string()),
    }
}

fn key_text(key: &Yaml<'_>) -> String {
    match to_json(key) {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// A scalar as text: strings as they are, numbers and booleans written out.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(value) => Some(value.to_string()),
        _ => None,
    }
}

/// A value as the report shows it: strings bare, anything else as compact JSON.
pub(crate) fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Reports `key = value` of `service` with `item` (a note, or a key not imported): how pm2's
/// and process-compose's readers report a key of a process.
pub(crate) fn report_key(report: &mut Report, item: Item, key: &str, value: &Value, service: &str) {
    report.push(item.key(key, &shown(value)).service(service));
}

/// A whole number that is not negative, written as a number or as digits in a string.
pub(crate) fn whole(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean, or a string saying one.
pub(crate) fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(value) => Some(*value),
        Value::String(text) => match text.trim() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `KEY=value` strings (process-compose's list form) or a map of values, as pairs in order;
/// what is neither is given back for the report.
pub(crate) fn env_pairs(value: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let mut pairs = Vec::new();
    let mut unreadable = Vec::new();
    match value {
        Value::Array(items) => {
            for item in items {
                match item.as_str().and_then(|text| text.split_once('=')) {
                    Some((name, value)) => pairs.push((name.trim().to_string(), value.to_string())),
                    None => unreadable.push(shown(item)),
                }
            }
        }
        Value::Object(map) => {
            for (name, value) in map {
                match text(value) {
                    Some(text) => pairs.push((name.clone(), text)),
                    None => unreadable.push(format!("{name} = {}", shown(value))),
                }
            }
        }
        other => unreadable.push(shown(other)),
    }
    (pairs, unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_becomes_json_in_order_with_merge_keys() {
        let value = from_yaml(
            "base: &base\n  restart: always\n  replicas: 2\nweb:\n  <<: *base\n  replicas: 3\n  command: \"python3 app.py\"\n  ratio: 1.5\n  off: false\n  none: ~\n",
        )
        .unwrap();
        let web = &value["web"];
        assert_eq!(web["restart"], "always");
        assert_eq!(web["replicas"], 3);
        assert_eq!(web["ratio"], 1.5);
        assert_eq!(web["off"], false);
        assert!(web["none"].is_null());
        let keys: Vec<&String> = web.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["replicas", "command", "ratio", "off", "none", "restart"]
        );
    }

    #[test]
    fn yaml_errors_say_where() {
        let error = from_yaml("processes:\n  web: [unclosed\n").unwrap_err();
        assert!(error.contains("line"), "{error}");
    }

    #[test]
    fn environments_in_both_forms() {
        let (pairs, bad) = env_pairs(&serde_json::json!(["A=1", "B=x=y", 3]));
        assert_eq!(
            pairs,
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(bad, ["3"]);
        let (pairs, _) = env_pairs(&serde_json::json!({"PORT": 3000, "DEBUG": true}));
        assert_eq!(
            pairs,
            [
                ("PORT".into(), "3000".into()),
                ("DEBUG".into(), "true".into())
            ]
        );
    }
}
