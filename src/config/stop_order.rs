//! `stop_order` of a service: on shutdown and on bulk stops, instances of a lower order stop
//! first, all of one order before the next. supervisord's `priority` (lower starts first and
//! stops last, default 999) is `stop_order = 1000 - priority`.

use super::diag::Diagnostic;
use super::reader::Fields;

/// The key's bounds: any 32-bit integer, negative ones too.
const RANGE: std::ops::Range<i64> = i32::MIN as i64..i32::MAX as i64 + 1;

const HINT: &str = "lower stops first, all of one order before the next; the default is 0, so stop_order = 10 stops after the others";

/// `stop_order = N` (default 0).
pub(crate) fn parse_stop_order(
    fields: &Fields<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<i32> {
    let before = diagnostics.len();
    let order = fields.signed_integer("stop_order", RANGE, "", diagnostics);
    for diagnostic in &mut diagnostics[before..] {
        diagnostic.hint = Some(HINT.into());
    }
    i32::try_from(order?).ok()
}

/// The hint for supervisord's `priority` in a service table.
pub(crate) const PRIORITY_HINT: &str = "ten orders stops with `stop_order` (lower stops first, default 0); supervisord's priority P is stop_order = 1000 - P";

#[cfg(test)]
mod tests {
    use crate::config::diag::SourceFile;
    use crate::config::parse::parse_document;
    use crate::config::reader::Fields;

    fn read(text: &str) -> (Option<i32>, Vec<String>) {
        let file = SourceFile {
            path: "tenement.toml".into(),
            text: text.to_string(),
        };
        let document = parse_document(&file).unwrap();
        let fields = Fields::new(&file, document.as_table(), "[service.x]", 0..0);
        let mut diagnostics = Vec::new();
        let order = super::parse_stop_order(&fields, &mut diagnostics);
        let messages = diagnostics.into_iter().map(|d| d.message).collect();
        (order, messages)
    }

    #[test]
    fn orders_may_be_negative() {
        assert_eq!(read("stop_order = 10\n"), (Some(10), vec![]));
        assert_eq!(read("stop_order = -5\n"), (Some(-5), vec![]));
        assert_eq!(read(""), (None, vec![]));
    }

    #[test]
    fn anything_else_is_an_error() {
        assert_eq!(
            read("stop_order = \"first\"\n"),
            (
                None,
                vec!["`stop_order` in [service.x] must be an integer, found a string".to_string()]
            )
        );
        assert_eq!(
            read("stop_order = 3000000000\n"),
            (
                None,
                vec!["`stop_order` in [service.x] must be between -2147483648 and 2147483647, found 3000000000".to_string()]
            )
        );
    }
}
