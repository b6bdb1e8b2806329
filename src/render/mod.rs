//! Rendering for humans and machines: plans (terraform-like text, JSON), diagnostics
//! (rustc-like), the effective config.
//!
//! PURE and total: takes data, returns strings; never prints, never fails. Must not import
//! tokio, nix, hyper or notify.

pub(crate) mod config_view;
pub(crate) mod diagnostics;
pub(crate) mod json;
pub(crate) mod plan_text;
pub(crate) mod style;

pub use diagnostics::{render_diagnostics, render_each};
pub use json::{plan_json, validation_json};
pub use plan_text::{Detail, NO_CHANGES, render_plan};
pub use style::Style;

/// `count` of `word`, in the plural unless one: "1 instance", "3 instances".
pub fn counted(count: usize, word: &str) -> String {
    if count == 1 {
        format!("{count} {word}")
    } else {
        format!("{count} {word}s")
    }
}
