//! `command` (and `args`) of a service table -> the argv, a template per word: the command
//! shell-split, or the program and its `args`; an empty or unbalanced command refused. Must
//! not import tokio, nix, hyper or notify.

use crate::config::diag::Diagnostic;
use crate::config::reader::{Fields, Spanned, did_you_mean};
use crate::config::template::{Template, Var};

use super::shared::template;

/// `command` shell-split, or `command` + `args`.
pub(super) fn parse_argv(
    fields: &Fields<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<Template>> {
    let args = fields.string_list("args", diagnostics);
    let Some(command) = fields.string("command", diagnostics) else {
        // A likely typo of `command` is already reported as such; "missing" would be noise.
        let typo = fields
            .table
            .iter()
            .any(|(key, _)| key != "command" && did_you_mean(key, &["command"]).is_some());
        if fields.item("command").is_none() && !typo {
            fields.missing(
                "command",
                "add the program to run, e.g. command = \"python3 app.py\"",
                diagnostics,
            );
        }
        return None;
    };
    let words: Vec<Spanned<String>> = if fields.item("args").is_some() {
        let mut words = vec![Spanned {
            value: command.value.to_string(),
            span: command.span.clone(),
        }];
        words.extend(args?.into_iter().map(|arg| Spanned {
            value: arg.value.to_string(),
            span: arg.span,
        }));
        words
    } else {
        match shell_words::split(command.value) {
            Ok(words) => words
                .into_iter()
                .map(|word| Spanned {
                    value: word,
                    span: command.span.clone(),
                })
                .collect(),
            Err(error) => {
                diagnostics.push(
                    Diagnostic::at(
                        fields.file,
                        command.span.clone(),
                        format!("`command` in {} cannot be split into words: {error}", fields.section),
                    )
                    .with_label("unbalanced quotes")
                    .with_hint("close the quote, or give the program in `command` and its arguments in `args = [...]`"),
                );
                return None;
            }
        }
    };
    if words
        .first()
        .is_none_or(|word| word.value.trim().is_empty())
    {
        diagnostics.push(
            Diagnostic::at(
                fields.file,
                command.span.clone(),
                format!("`command` in {} is empty", fields.section),
            )
            .with_label("no program")
            .with_hint("name the program to run, e.g. command = \"python3 app.py\""),
        );
        return None;
    }
    let mut argv = Vec::with_capacity(words.len());
    let mut ok = true;
    for word in &words {
        let borrowed = Spanned {
            value: word.value.as_str(),
            span: word.span.clone(),
        };
        match template(fields, "command", &borrowed, &Var::ALL, diagnostics) {
            Some(parsed) => argv.push(parsed),
            None => ok = false,
        }
    }
    ok.then_some(argv)
}

#[cfg(test)]
mod tests {
    use crate::config::service::tests::service;

    #[test]
    fn command_is_shell_split() {
        let (template, diagnostics) = service("command = 'my-app --name \"hello world\" {id}'\n");
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let argv: Vec<String> = template
            .unwrap()
            .argv
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(argv, ["my-app", "--name", "hello world", "{id}"]);
    }

    #[test]
    fn command_and_args_are_equivalent_to_a_split_command() {
        let (split, _) = service("command = \"uv run python app.py\"\n");
        let (explicit, _) = service("command = \"uv\"\nargs = [\"run\", \"python\", \"app.py\"]\n");
        assert_eq!(split.unwrap().argv, explicit.unwrap().argv);
    }
}
