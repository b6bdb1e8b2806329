//! Template strings: `{name}`, `{id}`, `{index}`, `{data_dir}`, `{port}` and `{socket}` inside `env`,
//! `command`, `args`, `socket` and `workdir` values.
//!
//! A `{` followed by a lowercase identifier and `}` is a variable reference; an unknown one is
//! an error. Anything else (`{"a": {"b": 1}}`, `{ }`) is literal text, so JSON in env values
//! works. `{{` writes a literal `{` (so `{{id}` is the text `{id}`); `}` is always literal.
//! Pure: no I/O.

use std::fmt;

/// A variable a template may reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Var {
    Name,
    Id,
    /// An instance's number in a process set (`[instances] worker = { count = 4 }`): its
    /// id, which is that number.
    Index,
    DataDir,
    Port,
    Socket,
}

impl Var {
    pub const ALL: [Var; 6] = [
        Var::Name,
        Var::Id,
        Var::Index,
        Var::DataDir,
        Var::Port,
        Var::Socket,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Var::Name => "name",
            Var::Id => "id",
            Var::Index => "index",
            Var::DataDir => "data_dir",
            Var::Port => "port",
            Var::Socket => "socket",
        }
    }

    fn parse(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|var| var.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Segment {
    Text(String),
    Var(Var),
}

/// A parsed template. After interpolation of what is known at plan time, only `{port}` is
/// left: it is known after apply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Template {
    segments: Vec<Segment>,
}

/// A problem in a template; `offset..offset + len` is a byte range of the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub len: usize,
    pub name: String,
}

/// Values substituted at plan time. `port` stays a variable unless given.
pub struct Bindings<'a> {
    pub name: &'a str,
    pub id: &'a str,
    pub data_dir: &'a str,
    pub socket: &'a str,
    pub port: Option<u16>,
}

impl Template {
    /// A template that is plain text.
    pub fn literal(text: &str) -> Self {
        let mut template = Template::default();
        template.push_text(text);
        template
    }

    /// Parses `text`, returning every unknown variable.
    pub fn parse(text: &str) -> Result<Self, Vec<TemplateError>> {
        let mut template = Template::default();
        let mut errors = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(index) = rest.find('{') {
            let (before, from_brace) = rest.split_at(index);
            template.push_text(before);
            let consumed;
            if from_brace.starts_with("{{") {
                template.push_text("{");
                consumed = 2;
            } else if let Some(name) = variable_name(from_brace) {
                consumed = name.len() + 2;
                match Var::parse(name) {
                    Some(var) => template.segments.push(Segment::Var(var)),
                    None => errors.push(TemplateError {
                        offset: offset + index,
                        len: consumed,
                        name: name.to_string(),
                    }),
                }
            } else {
                template.push_text("{");
                consumed = 1;
            }
            offset += index + consumed;
            rest = &from_brace[consumed..];
        }
        template.push_text(rest);
        if errors.is_empty() {
            Ok(template)
        } else {
            Err(errors)
        }
    }

    fn push_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(Segment::Text(last)) = self.segments.last_mut() {
            last.push_str(text);
        } else {
            self.segments.push(Segment::Text(text.to_string()));
        }
    }

    pub fn uses(&self, var: Var) -> bool {
        self.segments.contains(&Segment::Var(var))
    }

    /// Variables used, in order of first use.
    pub fn vars(&self) -> impl Iterator<Item = Var> + '_ {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Var(var) => Some(*var),
            Segment::Text(_) => None,
        })
    }

    /// Substitutes every bound variable; `{port}` stays when `bindings.port` is `None`.
    pub fn bind(&self, bindings: &Bindings<'_>) -> Template {
        let mut out = Template::default();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_text(text),
                Segment::Var(Var::Name) => out.push_text(bindings.name),
                Segment::Var(Var::Id | Var::Index) => out.push_text(bindings.id),
                Segment::Var(Var::DataDir) => out.push_text(bindings.data_dir),
                Segment::Var(Var::Socket) => out.push_text(bindings.socket),
                Segment::Var(Var::Port) => match bindings.port {
                    Some(port) => out.push_text(&port.to_string()),
                    None => out.segments.push(Segment::Var(Var::Port)),
                },
            }
        }
        out
    }

    /// The text when no variable is left, `None` otherwise.
    pub fn as_literal(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [] => Some(""),
            [Segment::Text(text)] => Some(text),
            _ => None,
        }
    }

    /// The final string, with `port` filled in.
    pub fn resolve_port(&self, port: u16) -> String {
        self.fill_port(&port.to_string())
    }

    /// The final string, with `text` where `{port}` is (another system's reference to the
    /// port, such as Nomad's `${NOMAD_PORT_http}`).
    pub fn fill_port(&self, port: &str) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Var(Var::Port) => out.push_str(port),
                Segment::Var(var) => {
                    out.push('{');
                    out.push_str(var.as_str());
                    out.push('}');
                }
            }
        }
        out
    }
}

/// The identifier in `{ident}` at the start of `text`, if it has that form.
fn variable_name(text: &str) -> Option<&str> {
    let inner = &text[1..];
    let end = inner.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))?;
    (end > 0 && inner[end..].starts_with('}')).then(|| &inner[..end])
}

impl Template {
    /// Appends the template as it would be written: variables as `{var}`, and a literal `{`
    /// doubled where it would otherwise read as a variable or an escape. (No `fmt`
    /// machinery: this runs for every field of every instance.)
    pub fn write_text(&self, out: &mut String) {
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => {
                    let mut rest = text.as_str();
                    while let Some(index) = rest.find('{') {
                        out.push_str(&rest[..=index]);
                        let after = &rest[index..];
                        if after[1..].starts_with('{') || variable_name(after).is_some() {
                            out.push('{');
                        }
                        rest = &rest[index + 1..];
                    }
                    out.push_str(rest);
                }
                Segment::Var(var) => {
                    out.push('{');
                    out.push_str(var.as_str());
                    out.push('}');
                }
            }
        }
    }

    /// [`Template::write_text`] into a new string.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out);
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings() -> Bindings<'static> {
        Bindings {
            name: "notes",
            id: "alice",
            data_dir: "/data",
            socket: "/run/notes-alice.sock",
            port: None,
        }
    }

    #[test]
    fn variables_are_substituted_and_port_is_kept() {
        let template = Template::parse("{data_dir}/{name}/{id}:{port}").unwrap();
        let bound = template.bind(&bindings());
        assert_eq!(bound.to_string(), "/data/notes/alice:{port}");
        assert!(bound.uses(Var::Port));
        assert_eq!(bound.resolve_port(30001), "/data/notes/alice:30001");
    }

    #[test]
    fn fill_port_puts_the_text_where_the_port_is_and_keeps_literal_braces() {
        let template = Template::parse("{{port} :{port} {{\"a\": 1}").unwrap();
        assert_eq!(
            template.fill_port("${NOMAD_PORT_http}"),
            "{port} :${NOMAD_PORT_http} {\"a\": 1}"
        );
    }

    #[test]
    fn unknown_variables_are_reported_with_their_offsets() {
        let errors = Template::parse("a {nmae} b {id} {datadir}").unwrap_err();
        assert_eq!(
            errors,
            vec![
                TemplateError {
                    offset: 2,
                    len: 6,
                    name: "nmae".into()
                },
                TemplateError {
                    offset: 16,
                    len: 9,
                    name: "datadir".into()
                },
            ]
        );
    }

    #[test]
    fn json_and_escapes_are_literal_text() {
        let template = Template::parse(r#"{"a": {"b": 1}} {{id} }"#).unwrap();
        assert_eq!(template.as_literal(), Some(r#"{"a": {"b": 1}} {id} }"#));
        assert_eq!(template.to_string(), r#"{"a": {"b": 1}} {{id} }"#);
        let reparsed = Template::parse(&template.to_string()).unwrap();
        assert_eq!(reparsed, template);
    }

    #[test]
    fn display_round_trips_literal_braces() {
        for text in ["{id}", "{{", "{{id}", "a{", "{x}", "}{"] {
            let template = Template::literal(text);
            assert_eq!(template.vars().count(), 0);
            let reparsed = Template::parse(&template.to_string()).unwrap();
            assert_eq!(
                reparsed.as_literal(),
                Some(text),
                "{text} shown as {template}"
            );
        }
        assert_eq!(Template::literal("{id}").to_string(), "{{id}");
    }
}
