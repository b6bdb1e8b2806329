//! A small HCL writer: attributes and blocks, strings escaped as HCL2 wants (`\`, `"`,
//! control characters, and `${` / `%{`, which would start an interpolation or a directive,
//! doubled to `$${` / `%%{`). Only what a Nomad jobspec needs. Pure.

use std::fmt::Write;

/// A value of an attribute.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// Text, escaped when written; `raw` parts (Nomad's `${NOMAD_PORT_http}`) are kept as
    /// they are where `mark` stands.
    Text(String),
    Int(u64),
    Bool(bool),
    List(Vec<Value>),
}

/// A body: attributes and blocks in the order given.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Body {
    items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Attribute(String, Value),
    Block(String, Vec<String>, Body),
}

impl Body {
    pub(crate) fn attr(mut self, name: &str, value: Value) -> Self {
        self.items.push(Item::Attribute(name.to_string(), value));
        self
    }

    pub(crate) fn text(self, name: &str, value: &str) -> Self {
        self.attr(name, Value::Text(value.to_string()))
    }

    pub(crate) fn block(mut self, name: &str, labels: &[&str], body: Body) -> Self {
        let labels = labels.iter().map(|label| label.to_string()).collect();
        self.items.push(Item::Block(name.to_string(), labels, body));
        self
    }

    /// The body as HCL text, with `mark` in strings written as `raw`.
    pub(crate) fn write(&self, mark: &str, raw: &str) -> String {
        let mut out = String::new();
        self.write_into(&mut out, 0, mark, raw);
        out
    }

    fn write_into(&self, out: &mut String, depth: usize, mark: &str, raw: &str) {
        let indent = "  ".repeat(depth);
        let width = self
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Attribute(name, _) => Some(name.len()),
                Item::Block(..) => None,
            })
            .max()
            .unwrap_or(0);
        for item in &self.items {
            match item {
                Item::Attribute(name, value) => {
                    let _ = write!(out, "{indent}{name:<width$} = ");
                    write_value(out, value, mark, raw);
                    out.push('\n');
                }
                Item::Block(name, labels, body) => {
                    out.push_str(&indent);
                    out.push_str(name);
                    for label in labels {
                        out.push(' ');
                        out.push_str(&quote(label, mark, raw));
                    }
                    if body.items.is_empty() {
                        out.push_str(" {}\n");
                    } else {
                        out.push_str(" {\n");
                        body.write_into(out, depth + 1, mark, raw);
                        let _ = writeln!(out, "{indent}}}");
                    }
                }
            }
        }
    }
}

fn write_value(out: &mut String, value: &Value, mark: &str, raw: &str) {
    match value {
        Value::Text(text) => out.push_str(&quote(text, mark, raw)),
        Value::Int(number) => {
            let _ = write!(out, "{number}");
        }
        Value::Bool(value) => {
            let _ = write!(out, "{value}");
        }
        Value::List(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_value(out, item, mark, raw);
            }
            out.push(']');
        }
    }
}

/// `text` as an HCL string literal, `mark` written as `raw`.
fn quote(text: &str, mark: &str, raw: &str) -> String {
    let mut out = String::from("\"");
    for (index, part) in text.split(mark).enumerate() {
        if index > 0 {
            out.push_str(raw);
        }
        let mut chars = part.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '$' | '%' if chars.peek() == Some(&'{') => {
                    out.push(c);
                    out.push(c);
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_the_mark_is_kept_raw() {
        let body = Body::default().block(
            "env",
            &[],
            Body::default()
                .text("A", "say \"hi\"\\ ${HOME} %{x}\n")
                .text("PORT", "@")
                .attr("LIST", Value::List(vec![Value::Int(1), Value::Bool(true)])),
        );
        assert_eq!(
            body.write("@", "${NOMAD_PORT_http}"),
            "env {\n  A    = \"say \\\"hi\\\"\\\\ $${HOME} %%{x}\\n\"\n  PORT = \"${NOMAD_PORT_http}\"\n  LIST = [1, true]\n}\n"
        );
    }
}
