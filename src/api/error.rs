//! The API's errors: an HTTP status and what to tell the user ([`CallError`]), as the JSON
//! body every error answer has; and the reconciler's failures said in HTTP.

use hyper::{Method, Response, StatusCode};

use crate::body::{Body, json};
use crate::config::Diagnostic;
use crate::desired::select::SelectError;
use crate::names::InstanceKey;
use crate::reconcile::Failure;

use super::types::ErrorBody;

/// An API error: an HTTP status and what to tell the user.
#[derive(Debug, Clone)]
pub struct CallError {
    pub status: u16,
    pub message: String,
    pub hint: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

impl CallError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            hint: None,
            diagnostics: Vec::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn not_declared(key: &InstanceKey) -> Self {
        Self::new(404, format!("{key} is not declared"))
            .hint(format!("declare it with `ten spawn {key}`, then try again"))
    }
}

impl From<Failure> for CallError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::NotDeclared(key) => CallError::not_declared(&key),
            Failure::NeverRun(key) => CallError::new(409, format!("{key} has never run"))
                .hint(format!("start it with `ten start {key}`")),
            Failure::Invalid(diagnostics) => CallError {
                status: 409,
                message: "the files have errors; nothing was applied".into(),
                hint: Some("fix them (`ten validate` shows where) and apply again".into()),
                diagnostics,
            },
            Failure::PlanChanged { expected, now } => CallError::new(
                409,
                format!("the plan changed since it was shown (token {expected}, now {now})"),
            )
            .hint("run `ten diff` to see the current plan, then apply again"),
        }
    }
}

/// A selector or key that selects nothing declared: 404, with its "did you mean" or what to do.
pub(crate) fn select_error(error: SelectError) -> CallError {
    let hint = error.hint();
    CallError::new(404, error.to_string()).hint(hint)
}

pub(crate) fn bad_request(message: impl Into<String>) -> CallError {
    CallError::new(400, message)
}

pub(crate) fn bad_key(error: crate::names::KeyError) -> CallError {
    bad_request(error.to_string())
}

pub(crate) fn not_found(method: &Method, path: &str) -> CallError {
    CallError::new(404, format!("no API route {method} /api/{path}"))
        .hint("see `ten --help` for what the CLI can do")
}

/// The answer of `error`.
pub(crate) fn failure(error: CallError) -> Response<Body> {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        status,
        &ErrorBody {
            error: error.message,
            hint: error.hint,
            diagnostics: error.diagnostics,
        },
    )
}
