//! JSON values as YAML documents and back, with `saphyr` (ten's YAML crate already, for
//! `ten import`): Kubernetes objects are built as typed structs, serialized to JSON values,
//! and written as YAML here. Strings that YAML would read as something else (`"true"`, `"0"`,
//! `"1Gi"` stays plain) are quoted by the emitter. Pure.

use saphyr::{LoadableYamlNode, Mapping, Scalar, Yaml, YamlEmitter};
use serde_json::{Map, Value};

/// `value` as one YAML document, starting with `---` and ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let yaml = from_json(value);
    let mut out = String::new();
    // Writing to a String cannot fail, and every JSON value is representable.
    let _ = YamlEmitter::new(&mut out).dump(&yaml);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn from_json(value: &Value) -> Yaml<'static> {
    match value {
        Value::Null => Yaml::Value(Scalar::Null),
        Value::Bool(value) => Yaml::Value(Scalar::Boolean(*value)),
        Value::Number(number) => match number.as_i64() {
            Some(int) => Yaml::Value(Scalar::Integer(int)),
            None => Yaml::Value(Scalar::FloatingPoint(number.as_f64().unwrap_or(0.0).into())),
        },
        Value::String(text) => Yaml::Value(Scalar::String(text.clone().into())),
        Value::Array(items) => Yaml::Sequence(items.iter().map(from_json).collect()),
        Value::Object(object) => {
            let mut mapping = Mapping::new();
            for (key, value) in object {
                mapping.insert(
                    Yaml::Value(Scalar::String(key.clone().into())),
                    from_json(value),
                );
            }
            Yaml::Mapping(mapping)
        }
    }
}

/// Every document of a YAML text as a JSON value (what a test reads an export back with).
pub fn documents(text: &str) -> Result<Vec<Value>, String> {
    let documents = Yaml::load_from_str(text).map_err(|error| error.to_string())?;
    documents.iter().map(to_json).collect()
}

fn to_json(yaml: &Yaml<'_>) -> Result<Value, String> {
    Ok(match yaml {
        Yaml::Value(Scalar::Null) => Value::Null,
        Yaml::Value(Scalar::Boolean(value)) => Value::Bool(*value),
        Yaml::Value(Scalar::Integer(value)) => Value::from(*value),
        Yaml::Value(Scalar::FloatingPoint(value)) => Value::from(value.into_inner()),
        Yaml::Value(Scalar::String(text)) => Value::String(text.to_string()),
        Yaml::Representation(text, _, _) => Value::String(text.to_string()),
        Yaml::Sequence(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let Yaml::Value(Scalar::String(key)) = key else {
                    return Err(format!("a key that is not a string: {key:?}"));
                };
                object.insert(key.to_string(), to_json(value)?);
            }
            Value::Object(object)
        }
        other => return Err(format!("not a JSON value: {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_read_as_other_types_come_back_as_strings() {
        let value = serde_json::json!({
            "min-scale": "0",
            "enabled": "true",
            "empty": "",
            "none": "~",
            "multi": "a\nb\n",
            "colon": "a: b",
            "number": 3,
            "list": ["-x", "#y", "{z}"],
            "nested": {"k": false}
        });
        let text = to_yaml(&value);
        assert!(text.contains("min-scale: \"0\""), "{text}");
        assert_eq!(documents(&text).unwrap(), vec![value]);
    }

    #[test]
    fn several_documents_are_read_back_in_order() {
        let text = format!(
            "{}{}",
            to_yaml(&serde_json::json!({"a": 1})),
            to_yaml(&serde_json::json!({"b": 2}))
        );
        assert_eq!(
            documents(&text).unwrap(),
            vec![serde_json::json!({"a": 1}), serde_json::json!({"b": 2})]
        );
    }
}
