//! Writing for humans: colors only on a terminal (and never with `NO_COLOR`), and output that
//! survives a closed pipe (`ten diff | head`).

use std::io::{self, IsTerminal, Write};

use crate::render::Style;

/// The style for a stream: color on a terminal unless `NO_COLOR` is set (non-empty);
/// `CLICOLOR_FORCE=1` forces color.
pub(super) fn style_for(stream: &impl IsTerminal) -> Style {
    let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    if set("NO_COLOR") {
        return Style::PLAIN;
    }
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|value| value != "0") || stream.is_terminal()
    {
        Style::COLOR
    } else {
        Style::PLAIN
    }
}

pub fn stdout_style() -> Style {
    style_for(&io::stdout())
}

pub fn stderr_style() -> Style {
    style_for(&io::stderr())
}

/// Writes `text` to stdout. A reader that went away (EPIPE) is not an error: we just stop.
pub fn print_stdout(text: &str) -> io::Result<()> {
    ignore_broken_pipe(io::stdout().lock().write_all(text.as_bytes()))
}

pub fn print_stderr(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// A server's note in a followed stream (an SSE comment, `: 6 events were skipped ...`) goes
/// to stderr, so that stdout keeps only what was followed. Whether `line` was one.
pub fn print_stream_note(line: &str) -> bool {
    match line.strip_prefix(": ") {
        Some(note) => {
            print_stderr(&format!("ten: {note}\n"));
            true
        }
        None => false,
    }
}

fn ignore_broken_pipe(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
