//! The dashboard's calls into the API, in process: a request built here, answered by
//! `ApiState::dispatch` for the session's scope, so the dashboard reads and acts exactly as
//! the API does (the same routes, the same scope checks, the same handlers) without a token
//! on the wire or logic of its own.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use serde::de::DeserializeOwned;

use crate::api::scope::Scope;
use crate::api::state::ApiState;
use crate::api::types::ErrorBody;
use crate::body::Body;

/// An API answer, read whole.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub bytes: Bytes,
}

impl Answer {
    pub(crate) fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The document of a successful answer, else what the error says.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        if !self.ok() {
            return Err(self.error());
        }
        serde_json::from_slice(&self.bytes)
            .map_err(|error| format!("the API's answer could not be read: {error}"))
    }

    /// What an error answer says (its message and hint), or its status.
    pub(crate) fn error(&self) -> String {
        match serde_json::from_slice::<ErrorBody>(&self.bytes) {
            Ok(body) => match body.hint {
                Some(hint) => format!("{} ({hint})", body.error),
                None => body.error,
            },
            Err(_) => format!(
                "{} {}",
                self.status,
                String::from_utf8_lossy(&self.bytes).trim()
            ),
        }
    }
}

/// `method /api/PATH` for `scope`, with a JSON body if given; the answer read whole (a
/// streamed one, like apply's, to its end).
pub(crate) async fn call(
    api: &Arc<ApiState>,
    scope: &Scope,
    method: Method,
    path_and_query: &str,
    body: Option<serde_json::Value>,
) -> Answer {
    let reply = raw(api, scope, method, path_and_query, body).await;
    let status = reply.status();
    match reply.into_body().collect().await {
        Ok(collected) => Answer {
            status,
            bytes: collected.to_bytes(),
        },
        Err(error) => Answer {
            status: StatusCode::BAD_GATEWAY,
            bytes: Bytes::from(
                serde_json::to_vec(&ErrorBody {
                    error: format!("the API's answer broke off: {error}"),
                    hint: None,
                    diagnostics: Vec::new(),
                })
                .unwrap_or_default(),
            ),
        },
    }
}

/// The API's response itself (for streams, passed on as they come).
pub(crate) async fn raw(
    api: &Arc<ApiState>,
    scope: &Scope,
    method: Method,
    path_and_query: &str,
    body: Option<serde_json::Value>,
) -> hyper::Response<Body> {
    let bytes = body
        .map(|body| serde_json::to_vec(&body).unwrap_or_default())
        .unwrap_or_default();
    let request = Request::builder()
        .method(method)
        .uri(format!("/api/{path_and_query}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("a request to a path of ten's own");
    Arc::clone(api).dispatch(scope.clone(), request).await
}

/// `key` as a path segment (`notes%3Aalice`).
pub(crate) fn segment(key: &str) -> String {
    form_urlencoded::byte_serialize(key.as_bytes()).collect()
}

/// URL parameters from pairs, empty values left out.
pub(crate) fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut url = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            url.append_pair(name, value);
        }
    }
    url.finish()
}
