//! The dashboard's POSTs: the login (a token exchanged for a session; a failure counts in the
//! API's limiter like any failed token check), the logout, and the actions of its forms
//! (apply, restart, stop, start, weight), each carried out by the API route that does it.
//! Every POST but the login must carry the session's CSRF token; every POST that says where
//! it comes from (`Origin`) must come from this host.

use std::collections::HashMap;
use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::api::auth::Refused;
use crate::api::types::{ActionResult, ApplyProgress};
use crate::body::{self, Body};

use super::call::{Answer, call, segment};
use super::pages::{instance_href, login as login_page, problem_page};
use super::router::Action;
use super::session::{Flash, clear_cookie, set_cookie};
use super::{Client, Current, Dashboard, html, see_other};

type Reply = Response<Body>;

/// Largest form accepted.
const MAX_FORM: usize = 16 * 1024;

async fn read_form(request: Request<Incoming>) -> Result<HashMap<String, String>, Reply> {
    let limited = http_body_util::Limited::new(request.into_body(), MAX_FORM);
    match limited.collect().await {
        Ok(collected) => Ok(form_urlencoded::parse(&collected.to_bytes())
            .into_owned()
            .collect()),
        Err(error) => Err(body::text(
            StatusCode::BAD_REQUEST,
            format!("cannot read the form: {error}"),
        )),
    }
}

/// Whether a request that names its origin comes from the host it is sent to (a browser
/// names it on every POST; a form of another site is refused before anything else).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("");
    origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .is_some_and(|(_, origin_host)| origin_host.eq_ignore_ascii_case(host))
}

fn cross_site() -> Reply {
    body::text(
        StatusCode::FORBIDDEN,
        "this form was sent from another site (its Origin is not this host); nothing was done",
    )
}

/// `POST /login`: the token of the form, checked as the API checks a bearer token.
pub(super) async fn login(
    dashboard: &Dashboard,
    request: Request<Incoming>,
    client: Client,
) -> Reply {
    if !same_origin(request.headers()) {
        return cross_site();
    }
    let form = match read_form(request).await {
        Ok(form) => form,
        Err(reply) => return reply,
    };
    let token = form
        .get("token")
        .map(|token| token.trim().to_string())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert(header::AUTHORIZATION, value);
    }
    match dashboard.api.authenticate(&headers, client.address) {
        Ok(scope) => match dashboard.sessions.create(token, scope, Instant::now()) {
            Ok(id) => {
                let mut reply = see_other("/");
                if let Ok(cookie) = HeaderValue::from_str(&set_cookie(&id, client.secure)) {
                    reply.headers_mut().insert(header::SET_COOKIE, cookie);
                }
                reply
            }
            Err(error) => body::text(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        },
        Err(Refused::Unauthorized) => html(
            StatusCode::UNAUTHORIZED,
            login_page(Some(
                "That is not a valid token. Paste the admin token ({data_dir}/api_token) or a tenant token.",
            )),
        ),
        Err(Refused::Limited { retry_after }) => {
            let seconds = retry_after.as_secs().max(1);
            let mut reply = html(
                StatusCode::TOO_MANY_REQUESTS,
                login_page(Some(&format!(
                    "Too many failed sign-ins from this address; try again in {seconds} s."
                ))),
            );
            reply
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            reply
        }
    }
}

/// The form of a session's POST, if it carries the session's CSRF token.
async fn checked_form(
    request: Request<Incoming>,
    current: &Current,
) -> Result<HashMap<String, String>, Reply> {
    if !same_origin(request.headers()) {
        return Err(cross_site());
    }
    let form = read_form(request).await?;
    match form.get("csrf") {
        Some(csrf) if current.session.csrf_matches(csrf) => Ok(form),
        _ => Err(body::text(
            StatusCode::FORBIDDEN,
            "this form has no valid CSRF token (it is stale, or from another page); reload the page and try again",
        )),
    }
}

/// `POST /logout`: ends the session.
pub(super) async fn logout(
    dashboard: &Dashboard,
    request: Request<Incoming>,
    current: Current,
    client: Client,
) -> Reply {
    if let Err(reply) = checked_form(request, &current).await {
        return reply;
    }
    dashboard.sessions.remove(&current.id);
    let mut reply = see_other("/");
    if let Ok(cookie) = HeaderValue::from_str(&clear_cookie(client.secure)) {
        reply.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    reply
}

/// `POST /actions/NAME`: the API route that does it, for the session's scope; back to the
/// page with what came of it.
pub(super) async fn act(
    dashboard: &Dashboard,
    request: Request<Incoming>,
    current: Current,
    action: Action,
) -> Reply {
    let form = match checked_form(request, &current).await {
        Ok(form) => form,
        Err(reply) => return reply,
    };
    let api = &dashboard.api;
    let scope = &current.session.scope;
    if action == Action::Apply {
        let plan = form.get("plan").cloned();
        let answer = call(
            api,
            scope,
            Method::POST,
            "apply",
            Some(json!({ "token": plan })),
        )
        .await;
        return finish(dashboard, &current, "/", answer, applied);
    }
    let Some(instance) = form.get("instance") else {
        return body::text(StatusCode::BAD_REQUEST, "the form names no instance");
    };
    let path = format!("instances/{}", segment(instance));
    let back = instance_href(instance);
    let answer = match action {
        Action::Restart => call(api, scope, Method::POST, &format!("{path}/restart"), None).await,
        Action::Stop => call(api, scope, Method::POST, &format!("{path}/stop"), None).await,
        Action::Start => call(api, scope, Method::POST, &format!("{path}/start"), None).await,
        Action::Weight => {
            let Some(weight) = form.get("weight").and_then(|w| w.trim().parse::<u8>().ok()) else {
                return body::text(
                    StatusCode::BAD_REQUEST,
                    "the weight must be a whole number from 0 to 100",
                );
            };
            let body = Some(json!({ "weight": weight }));
            call(api, scope, Method::PUT, &format!("{path}/weight"), body).await
        }
        Action::Apply => unreachable!("answered above"),
    };
    finish(dashboard, &current, &back, answer, acted)
}

/// What an action's answer says, kept for the next page; refused ones (401, 403) are
/// answered as such.
fn finish(
    dashboard: &Dashboard,
    current: &Current,
    back: &str,
    answer: Answer,
    message: fn(&Answer) -> String,
) -> Reply {
    if matches!(answer.status.as_u16(), 401 | 403) {
        return html(
            answer.status,
            problem_page(&current.session, "Not allowed", &answer.error()),
        );
    }
    let flash = if answer.ok() {
        Flash {
            ok: true,
            message: message(&answer),
        }
    } else {
        Flash {
            ok: false,
            message: answer.error(),
        }
    };
    dashboard.sessions.set_flash(&current.id, flash);
    see_other(back)
}

fn acted(answer: &Answer) -> String {
    answer
        .json::<ActionResult>()
        .map(|result| format!("{}: {}", result.instance, result.message))
        .unwrap_or_else(|error| error)
}

/// Apply's answer is a stream of progress lines; its last says how it ended.
fn applied(answer: &Answer) -> String {
    let text = String::from_utf8_lossy(&answer.bytes);
    let mut failures = Vec::new();
    let mut finished = None;
    for line in text.lines() {
        match serde_json::from_str::<ApplyProgress>(line) {
            Ok(ApplyProgress::Done {
                ok: false,
                target,
                message,
                ..
            }) => failures.push(format!("{target}: {message}")),
            Ok(ApplyProgress::Finished { ok, failed }) => finished = Some((ok, failed)),
            _ => {}
        }
    }
    match finished {
        Some((ok, 0)) => format!("applied: {ok} change(s) done"),
        Some((ok, failed)) => format!(
            "applied: {ok} done, {failed} failed ({})",
            failures.join("; ")
        ),
        None => "apply started; its outcome is in the events".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), value.parse().unwrap());
        }
        map
    }

    #[test]
    fn only_this_host_may_post() {
        assert!(same_origin(&headers(&[(header::HOST, "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080"),
        ])));
        assert!(!same_origin(&headers(&[
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            (header::HOST, "example.com"),
            (header::ORIGIN, "null"),
        ])));
    }

    #[test]
    fn an_apply_says_how_it_ended() {
        let answer = |text: &str| Answer {
            status: StatusCode::OK,
            bytes: bytes::Bytes::from(text.to_string()),
        };
        let done = answer(
            "{\"type\":\"started\",\"token\":\"t\",\"changes\":1}\n{\"type\":\"finished\",\"ok\":1,\"failed\":0}\n",
        );
        assert_eq!(applied(&done), "applied: 1 change(s) done");
        let failed = answer(
            "{\"type\":\"done\",\"target\":\"web:a\",\"action\":\"start\",\"ok\":false,\"message\":\"crashed\",\"elapsed_ms\":3}\n{\"type\":\"finished\",\"ok\":0,\"failed\":1}\n",
        );
        assert_eq!(
            applied(&failed),
            "applied: 0 done, 1 failed (web:a: crashed)"
        );
    }
}
