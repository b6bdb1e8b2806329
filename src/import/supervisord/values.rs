//! The values of supervisord's options: `%(name)s` expansions (Python's `%` formatting with
//! supervisord's names), `KEY=value,KEY2="a,b"` environments, booleans.

use std::collections::BTreeMap;

use crate::import::text::{INDEX, PORT};

/// What `%(process_num)s` becomes: `{index}` in a process set, a number otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProcessNum {
    Index,
    Number(u32),
}

/// The names a program's values may expand.
#[derive(Debug, Clone)]
pub(super) struct Expander<'a> {
    pub program: &'a str,
    pub group: &'a str,
    pub numprocs: u32,
    pub process_num: ProcessNum,
    pub here: &'a str,
    pub host: &'a str,
    pub env: &'a BTreeMap<String, String>,
}

/// A value after expansion, and what is worth saying about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Expanded {
    pub text: String,
    /// `ENV_X` names whose variable is not set here: left as written.
    pub unset: Vec<String>,
    /// Names supervisord does not know: left as written.
    pub unknown: Vec<String>,
    /// `%(ENV_X)s` replaced by the value here, by name.
    pub from_env: Vec<String>,
    /// `%(here)s` was replaced.
    pub here: bool,
    /// `%(process_num)02d`: a width that `{index}` cannot keep.
    pub padded: bool,
    /// `%(ENV_PORT)s` was made `{port}`: ten sets PORT for each instance of an HTTP service.
    pub port: bool,
}

impl Expander<'_> {
    pub(super) fn expand(&self, text: &str) -> Expanded {
        let mut expanded = Expanded::default();
        let mut rest = text;
        while let Some(at) = rest.find('%') {
            expanded.text.push_str(&rest[..at]);
            let from = &rest[at..];
            if let Some(after) = from.strip_prefix("%%") {
                expanded.text.push('%');
                rest = after;
                continue;
            }
            match reference(from) {
                Some(reference) => {
                    self.substitute(&reference, &from[..reference.len], &mut expanded);
                    rest = &from[reference.len..];
                }
                None => {
                    expanded.text.push('%');
                    rest = &from[1..];
                }
            }
        }
        expanded.text.push_str(rest);
        expanded
    }

    fn substitute(&self, reference: &Reference<'_>, written: &str, expanded: &mut Expanded) {
        let number = |value: u32| format_number(value, reference);
        let text = match reference.name {
            "program_name" => format_text(self.program, reference),
            "group_name" => format_text(self.group, reference),
            "host_node_name" => format_text(self.host, reference),
            "here" => {
                expanded.here = true;
                format_text(self.here, reference)
            }
            "numprocs" => number(self.numprocs),
            "process_num" => match self.process_num {
                ProcessNum::Number(value) => number(value),
                ProcessNum::Index => {
                    expanded.padded |= reference.width > 1;
                    INDEX.to_string()
                }
            },
            // The port the program is to listen on: each instance's own under ten, whatever
            // the importing shell has.
            "ENV_PORT" => {
                expanded.port = true;
                PORT.to_string()
            }
            name => match name.strip_prefix("ENV_") {
                Some(variable) => match self.env.get(variable) {
                    Some(value) => {
                        if !expanded.from_env.iter().any(|known| known == variable) {
                            expanded.from_env.push(variable.to_string());
                        }
                        format_text(value, reference)
                    }
                    None => {
                        expanded.unset.push(variable.to_string());
                        written.to_string()
                    }
                },
                None => {
                    expanded.unknown.push(name.to_string());
                    written.to_string()
                }
            },
        };
        expanded.text.push_str(&text);
    }
}

/// `%(name)FLAGS WIDTH .PRECISION CONVERSION`, as Python's `%` operator reads it.
struct Reference<'a> {
    name: &'a str,
    zero: bool,
    left: bool,
    width: usize,
    /// Bytes of the whole reference.
    len: usize,
}

fn reference(text: &str) -> Option<Reference<'_>> {
    let inner = text.strip_prefix("%(")?;
    let close = inner.find(')')?;
    let name = &inner[..close];
    let spec = &inner[close + 1..];
    let flags_end = spec
        .find(|c: char| !"-#0 +".contains(c))
        .unwrap_or(spec.len());
    let flags = &spec[..flags_end];
    let after_flags = &spec[flags_end..];
    let width_end = after_flags
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after_flags.len());
    let width = after_flags[..width_end].parse().unwrap_or(0);
    let mut after_width = &after_flags[width_end..];
    if let Some(precision) = after_width.strip_prefix('.') {
        let end = precision
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(precision.len());
        after_width = &precision[end..];
    }
    let conversion = after_width.chars().next()?;
    if !"diouxXeEfFgGcrsa".contains(conversion) {
        return None;
    }
    let len = text.len() - after_width.len() + conversion.len_utf8();
    Some(Reference {
        name,
        zero: flags.contains('0'),
        left: flags.contains('-'),
        width,
        len,
    })
}

fn format_number(value: u32, reference: &Reference<'_>) -> String {
    let width = reference.width;
    if reference.left {
        format!("{value:<width$}")
    } else if reference.zero {
        format!("{value:0width$}")
    } else {
        format!("{value:width$}")
    }
}

fn format_text(value: &str, reference: &Reference<'_>) -> String {
    let width = reference.width;
    if reference.left {
        format!("{value:<width$}")
    } else {
        format!("{value:>width$}")
    }
}

/// `KEY=value,KEY2="value, with a comma"` (supervisord's `environment`): pairs in order.
/// Quotes around a value are removed; commas and newlines outside quotes separate pairs.
pub(super) fn environment(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut part = String::new();
    let mut quote: Option<char> = None;
    let mut parts = Vec::new();
    for c in text.chars() {
        match (quote, c) {
            (Some(open), c) if c == open => {
                quote = None;
                part.push(c);
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                part.push(c);
            }
            (None, ',' | '\n') => parts.push(std::mem::take(&mut part)),
            _ => part.push(c),
        }
    }
    if quote.is_some() {
        return Err("a quote is not closed".to_string());
    }
    parts.push(part);
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            return Err(format!("{part:?} is not KEY=value"));
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        pairs.push((key.trim().to_string(), value.to_string()));
    }
    Ok(pairs)
}

/// supervisord's booleans: true/yes/on/1 and false/no/off/0, in any case.
pub(super) fn boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::text::readable;

    fn expander<'a>(env: &'a BTreeMap<String, String>, process_num: ProcessNum) -> Expander<'a> {
        Expander {
            program: "worker",
            group: "jobs",
            numprocs: 4,
            process_num,
            here: "/etc/supervisor",
            host: "box",
            env,
        }
    }

    #[test]
    fn supervisord_names_expand_like_python_formatting() {
        let env = BTreeMap::from([("HOME".to_string(), "/root".to_string())]);
        let single = expander(&env, ProcessNum::Number(3));
        let expanded =
            single.expand("%(program_name)s_%(process_num)02d of %(numprocs)d in %(here)s 100%%");
        assert_eq!(expanded.text, "worker_03 of 4 in /etc/supervisor 100%");
        assert!(expanded.here);
        let expanded = single.expand("%(ENV_HOME)s/%(ENV_NOPE)s %(group_name)s %(what)s %x");
        assert_eq!(expanded.text, "/root/%(ENV_NOPE)s jobs %(what)s %x");
        assert_eq!(expanded.from_env, ["HOME"]);
        assert_eq!(expanded.unset, ["NOPE"]);
        assert_eq!(expanded.unknown, ["what"]);
    }

    #[test]
    fn env_port_is_the_instance_s_port_whatever_the_importing_environment_has() {
        for env in [
            BTreeMap::new(),
            BTreeMap::from([("PORT".to_string(), "9999".to_string())]),
        ] {
            let single = expander(&env, ProcessNum::Number(0));
            let expanded = single.expand("python3 -m http.server %(ENV_PORT)s");
            assert_eq!(readable(&expanded.text), "python3 -m http.server {port}");
            assert!(expanded.port && expanded.unset.is_empty() && expanded.from_env.is_empty());
        }
    }

    #[test]
    fn process_num_in_a_set_is_the_index() {
        let env = BTreeMap::new();
        let set = expander(&env, ProcessNum::Index);
        let expanded = set.expand("w_%(process_num)02d.log");
        assert_eq!(readable(&expanded.text), "w_{index}.log");
        assert!(expanded.padded);
        assert!(!set.expand("%(process_num)s").padded);
    }

    #[test]
    fn environments_are_pairs_with_quoted_commas() {
        assert_eq!(
            environment("A=1,B=\"x, y\",\nC='z' ,").unwrap(),
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "x, y".to_string()),
                ("C".to_string(), "z".to_string()),
            ]
        );
        assert!(environment("A=\"open").is_err());
        assert!(environment("JUSTAWORD").is_err());
    }
}
