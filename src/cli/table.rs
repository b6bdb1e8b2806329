//! Small formatting helpers for tables and times.

use std::time::{Duration, UNIX_EPOCH};

/// Renders rows as left-aligned columns separated by two spaces (last column unpadded).
/// Cells may be colored: their escape sequences take no width.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|title| title.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(visible_width(cell));
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (index, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if index < last {
                let pad = widths[index] - visible_width(cell) + 2;
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// The characters of `text` a terminal shows: ANSI escape sequences (`ESC [ ... letter`, as
/// `render::Style` writes colors) take no room.
fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            width += 1;
        }
    }
    width
}

/// `42s`, `3m`, `5h`, `2d`.
pub(super) fn short_duration(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m", seconds / 60),
        3600..=86_399 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// `15:02:11.123` (UTC) of a time in unix milliseconds.
pub(super) fn clock(unix_ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(unix_ms);
    let stamp = humantime::format_rfc3339_millis(time).to_string();
    stamp.get(11..23).unwrap_or(&stamp).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let text = table(
            &["A", "LONGER"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["q".into(), "22".into()],
            ],
        );
        assert_eq!(text, "A    LONGER\nxyz  1\nq    22\n");
    }

    #[test]
    fn colored_cells_align_as_plain_ones() {
        let style = crate::render::Style::COLOR;
        let colored = table(
            &["INSTANCE", "STATE", "HEALTH"],
            &[
                vec!["a:x".into(), style.green("running"), "healthy".into()],
                vec!["a:y".into(), style.red("failed"), "failed".into()],
            ],
        );
        let plain: String = {
            let mut out = String::new();
            let mut chars = colored.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    chars.by_ref().find(char::is_ascii_alphabetic);
                } else {
                    out.push(c);
                }
            }
            out
        };
        assert_eq!(
            plain,
            "INSTANCE  STATE    HEALTH\na:x       running  healthy\na:y       failed   failed\n"
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(42), "42s");
        assert_eq!(short_duration(200), "3m");
        assert_eq!(short_duration(7300), "2h");
        assert_eq!(short_duration(200_000), "2d");
        assert_eq!(clock(1_764_000_131_123), "16:02:11.123");
    }
}
