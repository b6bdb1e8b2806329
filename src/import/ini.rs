//! The INI dialect supervisord reads (Python's `RawConfigParser` as supervisord sets it up):
//! `[section]` headers, `key = value` or `key: value` (keys lowercased), full-line comments
//! starting with `;` or `#`, inline comments starting with ` ;` or ` #` (after whitespace),
//! indented continuation lines (joined with a newline), and, as `strict = False` allows, a
//! section or key given twice (keys: the last value counts). Values are raw text: `%(x)s`
//! expansions are the reader's business.

/// One `[section]`, with its entries in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A key given twice in one section: the later value replaced the earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repeated {
    pub section: String,
    pub key: String,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ini {
    pub sections: Vec<Section>,
    pub repeated: Vec<Repeated>,
}

impl Section {
    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.key == key)
    }
}

/// A line supervisord could not read either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct IniError {
    pub line: usize,
    pub message: String,
}

pub(crate) fn parse(text: &str) -> Result<Ini, IniError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut ini = Ini::default();
    // The section being read (index into `ini.sections`) and the entry a continuation line
    // would extend, with the indentation of its line.
    let mut current: Option<usize> = None;
    let mut open_entry: Option<(usize, usize)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            open_entry = None;
            continue;
        }
        if trimmed.starts_with([';', '#']) {
            continue;
        }
        let content = without_inline_comment(raw);
        let indent = raw.len() - raw.trim_start().len();
        let value = content.trim();
        if let (Some(section), Some((entry, entry_indent))) = (current, open_entry)
            && indent > entry_indent
        {
            let entry = &mut ini.sections[section].entries[entry];
            if !value.is_empty() {
                if !entry.value.is_empty() {
                    entry.value.push('\n');
                }
                entry.value.push_str(value);
            }
            continue;
        }
        if let Some(name) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            let name = name.trim().to_string();
            current = Some(match ini.sections.iter().position(|s| s.name == name) {
                Some(existing) => existing,
                None => {
                    ini.sections.push(Section {
                        name,
                        line: line_number,
                        entries: Vec::new(),
                    });
                    ini.sections.len() - 1
                }
            });
            open_entry = None;
            continue;
        }
        let Some(section) = current else {
            return Err(IniError {
                line: line_number,
                message: "a key before any [section] header".to_string(),
            });
        };
        let Some(delimiter) = value.find(['=', ':']) else {
            return Err(IniError {
                line: line_number,
                message: format!("neither a [section] nor a `key = value` line: {value:?}"),
            });
        };
        let key = value[..delimiter].trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(IniError {
                line: line_number,
                message: "a value without a key".to_string(),
            });
        }
        let entry = Entry {
            key,
            value: value[delimiter + 1..].trim().to_string(),
            line: line_number,
        };
        let section_ref = &mut ini.sections[section];
        let at = match section_ref.entries.iter().position(|e| e.key == entry.key) {
            Some(existing) => {
                ini.repeated.push(Repeated {
                    section: section_ref.name.clone(),
                    key: entry.key.clone(),
                    line: line_number,
                });
                section_ref.entries[existing] = entry;
                existing
            }
            None => {
                section_ref.entries.push(entry);
                section_ref.entries.len() - 1
            }
        };
        open_entry = Some((at, indent));
    }
    Ok(ini)
}

/// The line up to an inline comment: `;` or `#` after whitespace.
fn without_inline_comment(line: &str) -> &str {
    let mut previous_is_space = false;
    for (at, c) in line.char_indices() {
        if (c == ';' || c == '#') && previous_is_space {
            return &line[..at];
        }
        previous_is_space = c.is_whitespace();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_comments_and_continuations() {
        let ini = parse(
            "; a comment\n[program:web]\nCommand = python3 app.py ; run it\nenvironment=A=\"1\",\n    B=\"2\"\n# gone\nurl: http://x/#frag\n\n[group:g]\nprograms=web\n",
        )
        .unwrap();
        assert_eq!(ini.sections.len(), 2);
        let web = &ini.sections[0];
        assert_eq!(web.name, "program:web");
        assert_eq!(web.get("command").unwrap().value, "python3 app.py");
        assert_eq!(web.get("command").unwrap().line, 3);
        assert_eq!(web.get("environment").unwrap().value, "A=\"1\",\nB=\"2\"");
        // `#` without whitespace before it is text; `:` delimits like `=`.
        assert_eq!(web.get("url").unwrap().value, "http://x/#frag");
        assert_eq!(ini.sections[1].get("programs").unwrap().value, "web");
    }

    #[test]
    fn a_key_given_twice_keeps_the_last_value_and_is_noted() {
        let ini = parse("[program:a]\ncommand=x\ncommand=y\n").unwrap();
        assert_eq!(ini.sections[0].get("command").unwrap().value, "y");
        assert_eq!(ini.repeated[0].line, 3);
    }

    #[test]
    fn what_supervisord_cannot_read_is_an_error_with_its_line() {
        assert_eq!(parse("command=x\n").unwrap_err().line, 1);
        let error = parse("[program:a]\njust words\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.message.contains("just words"));
    }
}
