//! The dashboard on the root domain (`/`): server-rendered HTML (`pages`, `instances`,
//! `instance`), usable without JavaScript and live with it (`assets/dash.js` refreshes the
//! page's `#live` part on the session's event stream). A token pasted once (`actions::login`)
//! becomes a session (`session`: an `HttpOnly`, `SameSite=Strict` cookie, `Secure` under TLS,
//! and a CSRF token every form carries and every POST must match). Without a session only
//! the login form and the two assets are served.
//!
//! It owns no data and decides no scope: it reads and acts through the API in process
//! (`call`: `ApiState::dispatch` with the session's scope), so a tenant's session sees and
//! does exactly what its token may through the API. `router` maps addresses to pages, `table`
//! filters, sorts and pages the instances. Must not import `server` or `cli`.

mod actions;
mod call;
mod handlers;
mod instance;
mod instances;
mod pages;
mod router;
pub(crate) mod session;
pub(crate) mod table;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use maud::Markup;

use crate::api::state::ApiState;
use crate::body::{self, Body};

use router::Page;
use session::{Session, Sessions, cookie_value};

/// The dashboard: the API it reads and acts through, and its sessions.
pub(crate) struct Dashboard {
    api: Arc<ApiState>,
    sessions: Sessions,
}

/// Who asks: the client address failed logins count against, and whether the connection is
/// TLS (the cookie is `Secure` then).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client {
    pub address: IpAddr,
    pub secure: bool,
}

/// A request's session: its id (the cookie) and what it holds.
pub(crate) struct Current {
    pub id: String,
    pub session: Session,
}

impl Dashboard {
    pub(crate) fn new(api: Arc<ApiState>) -> Dashboard {
        Dashboard {
            api,
            sessions: Sessions::default(),
        }
    }

    /// The answer to a request for the dashboard (any path of the root domain but
    /// `/health`, `/api/` and `/metrics`).
    pub(crate) async fn serve(&self, request: Request<Incoming>, client: Client) -> Response<Body> {
        let started = Instant::now();
        let Some(page) = Page::parse(request.method(), request.uri().path()) else {
            return body::text(
                StatusCode::NOT_FOUND,
                format!(
                    "nothing at {} {}; the dashboard is at /",
                    request.method(),
                    request.uri().path()
                ),
            );
        };
        if let Page::Asset(name) = page {
            return handlers::asset(name);
        }
        let current = self.current(&request);
        let mut response = match (page, current) {
            (Page::Login, _) => actions::login(self, request, client).await,
            (page, None) => handlers::without_session(&page),
            (Page::Overview, Some(current)) => handlers::overview(self, &current).await,
            (Page::Instances, Some(current)) => {
                handlers::instances(self, &current, request.uri().query()).await
            }
            (Page::Instance(key), Some(current)) => {
                handlers::instance(self, &current, &key, request.uri().query()).await
            }
            (Page::LiveEvents, Some(current)) => {
                handlers::live_events(self, &current, request.uri().query()).await
            }
            (Page::LiveLogs, Some(current)) => {
                handlers::live_logs(self, &current, request.uri().query()).await
            }
            (Page::Logout, Some(current)) => actions::logout(self, request, current, client).await,
            (Page::Act(action), Some(current)) => {
                actions::act(self, request, current, action).await
            }
            (Page::Asset(_), Some(_)) => unreachable!("served above"),
        };
        // How long the answer took to make, for the browser's tools and the benchmark.
        let took = started.elapsed().as_secs_f64() * 1000.0;
        if let Ok(value) = HeaderValue::from_str(&format!("render;dur={took:.2}")) {
            response.headers_mut().insert("server-timing", value);
        }
        response
    }

    /// The request's live session, if its cookie names one whose token is still valid (a
    /// token rotated or revoked ends its sessions).
    fn current<B>(&self, request: &Request<B>) -> Option<Current> {
        let now = Instant::now();
        let id = request
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(cookie_value)?
            .to_string();
        let session = self.sessions.get(&id, now)?;
        if self.api.auth.verify(&session.token).as_ref() != Some(&session.scope) {
            self.sessions.remove(&id);
            return None;
        }
        Some(Current { id, session })
    }
}

/// An HTML page, with the headers every page of the dashboard has: no caching, no framing,
/// scripts and styles from ten only.
pub(crate) fn html(status: StatusCode, markup: Markup) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        // `same-origin`, not `no-referrer`: with the latter a browser sends `Origin: null` on
        // the forms' POSTs, which the check of the origin refuses.
        .header(header::REFERRER_POLICY, "same-origin")
        .body(body::full(markup.into_string()))
        .expect("static response parts")
}

/// A redirect after a POST (to a page that is then fetched with GET).
pub(crate) fn see_other(location: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .body(body::full(""))
        .expect("static response parts")
}
