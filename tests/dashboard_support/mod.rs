//! What the dashboard's tests share: a project with two tenants, its tokens, and a
//! [`Visitor`]: a client of the dashboard that keeps its session cookie and the CSRF token
//! of the last page it read, as a browser does. `cdp` drives a real Chromium.

#![allow(dead_code)]

pub(crate) mod cdp;

use std::fs;
use std::path::Path;

use crate::support::http::{Request, Response};
use crate::support::server::{TestServer, backend_service, project, stderr, stdout};

/// A project with `web:a` and `web:b` (the tiny backend), and `settings`.
pub(crate) fn two_tenants(settings: &str) -> tempfile::TempDir {
    project(
        settings,
        &backend_service("web", ""),
        &[("instances/web/a.toml", ""), ("instances/web/b.toml", "")],
    )
}

pub(crate) fn admin_token(dir: &Path) -> String {
    fs::read_to_string(dir.join("tenement-data/api_token"))
        .unwrap()
        .trim()
        .to_string()
}

/// A new tenant token for `key`.
pub(crate) fn tenant_token(server: &TestServer, key: &str) -> String {
    let output = server.ten(&["token-gen", "--json", "--tenant", key]);
    assert!(output.status.success(), "{}", stderr(&output));
    let issued: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    issued["token"].as_str().unwrap().to_string()
}

/// A form body.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        body.append_pair(name, value);
    }
    body.finish()
}

/// The CSRF token of the first form of a page.
pub(crate) fn csrf_of(page: &str) -> Option<String> {
    let start = page.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_string())
}

/// A client of the dashboard: its cookie (if it signed in) and the last CSRF token seen.
pub(crate) struct Visitor {
    pub address: String,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

impl Visitor {
    pub(crate) fn anonymous(server: &TestServer) -> Visitor {
        Visitor {
            address: server.address().to_string(),
            cookie: None,
            csrf: None,
        }
    }

    /// Signs in with `token` and reads `/` (for its CSRF token).
    pub(crate) fn signed_in(server: &TestServer, token: &str) -> Visitor {
        let mut visitor = Visitor::anonymous(server);
        let answer = visitor.login(token);
        assert_eq!(answer.status, 303, "{answer:?}");
        let cookie = answer.header("set-cookie").expect("a session cookie");
        let value = cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("ten_session=")
            .to_string();
        visitor.cookie = Some(value);
        let home = visitor.get("/");
        assert_eq!(home.status, 200, "{home:?}");
        visitor
    }

    pub(crate) fn login(&self, token: &str) -> Response {
        self.send(
            Request::post("/login")
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form(&[("token", token)])),
        )
    }

    fn send(&self, request: Request) -> Response {
        let request = match &self.cookie {
            Some(cookie) => request.header("Cookie", &format!("ten_session={cookie}")),
            None => request,
        };
        request.send(self.address.as_str())
    }

    /// A GET; remembers the page's CSRF token.
    pub(crate) fn get(&mut self, path: &str) -> Response {
        let answer = self.send(Request::get(path));
        if let Some(csrf) = csrf_of(&answer.body) {
            self.csrf = Some(csrf);
        }
        answer
    }

    /// A form POST as the page would send it (with its CSRF token).
    pub(crate) fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Response {
        let mut pairs = pairs.to_vec();
        if let Some(csrf) = &self.csrf {
            pairs.push(("csrf", csrf));
        }
        self.post_raw(path, &pairs, None)
    }

    /// A form POST of exactly `pairs`, from `origin` if given.
    pub(crate) fn post_raw(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Response {
        let request = Request::post(path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(pairs));
        let request = match origin {
            Some(origin) => request.header("Origin", origin),
            None => request,
        };
        self.send(request)
    }
}
