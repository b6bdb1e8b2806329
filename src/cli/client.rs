//! The CLI's client of the control API.
//!
//! Finds the server (`--server` / `TENEMENT_SERVER`, else the `serve.json` that a running
//! `ten serve` writes into the data directory of this config, else `http://localhost:8080`)
//! and the token (`--token` / `TENEMENT_TOKEN`, else `{data_dir}/api_token`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::api::auth::token_path;
use crate::api::types::ErrorBody;
use crate::config::{Diagnostic, find_config};
use crate::render::render_diagnostics;
use crate::server::{ServeInfo, find_server, read_serve_info};

use super::{CliError, GlobalArgs, print_stderr, stderr_style};

pub(super) const DEFAULT_SERVER: &str = "http://localhost:8080";

pub(super) struct Client {
    url: String,
    authority: String,
    host: String,
    port: u16,
    token: Option<String>,
    /// The config in reach, to tell a server of another config from a wrong token.
    config_path: Option<PathBuf>,
    /// Where the server of that config listens, when one runs.
    own_server: Option<String>,
    runtime: tokio::runtime::Runtime,
}

/// The config in reach, the server serving it if one runs, and the data directory (for the
/// token): found through the registry by config path, or the config's `data_dir`.
fn local_server(
    config_path: Option<&Path>,
    global: &GlobalArgs,
) -> (Option<ServeInfo>, Option<PathBuf>) {
    let mut info = config_path.and_then(find_server);
    let mut data_dir = global.data_dir.clone();
    if info.is_none()
        && let Some(config_path) = config_path
    {
        let mut diagnostics = Vec::new();
        let configured = crate::desired::read_config(config_path, &mut diagnostics)
            .config
            .map(|config| config.settings.data_dir);
        let dir = data_dir.clone().or(configured);
        info = dir.as_deref().and_then(read_serve_info);
        data_dir = dir;
    }
    let data_dir = data_dir.or_else(|| info.as_ref().map(|info| PathBuf::from(&info.data_dir)));
    (info, data_dir)
}

impl Client {
    pub(super) fn new(global: &GlobalArgs) -> Result<Client, CliError> {
        let cwd = std::env::current_dir().map_err(|error| {
            CliError::new(format!("cannot read the working directory: {error}"))
        })?;
        let config_path = match find_config(global.config.as_deref(), &cwd) {
            Ok(path) => Some(path),
            // Without a config, nothing says which server or token to use: unless both are
            // given, say what is missing rather than try a default server.
            Err(error) if global.server.is_none() || global.token.is_none() => {
                return Err(CliError::new(error.to_string()).hint(
                    "run ten in your project's directory (`ten init` makes a new one), pass --config PATH, or --server URL with --token for a server elsewhere",
                ));
            }
            Err(_) => None,
        };
        let (info, data_dir) = local_server(config_path.as_deref(), global);
        let own_server = info.map(|info| info.url);
        let url = match &global.server {
            Some(url) => url.clone(),
            None => own_server
                .clone()
                .unwrap_or_else(|| DEFAULT_SERVER.to_string()),
        };
        let uri: Uri = url.parse().map_err(|error| {
            CliError::new(format!("invalid server URL {url:?}: {error}"))
                .hint("for example --server http://localhost:8080")
        })?;
        if uri.scheme_str().is_some_and(|scheme| scheme != "http") {
            return Err(
                CliError::new(format!("the CLI talks to ten over plain http, not {url}"))
                    .hint("use the server's local address, e.g. --server http://127.0.0.1:8080"),
            );
        }
        let host = uri
            .host()
            .unwrap_or("localhost")
            .trim_matches(['[', ']'])
            .to_string();
        let port = uri.port_u16().unwrap_or(80);
        let token = global.token.clone().or_else(|| {
            data_dir
                .as_deref()
                .and_then(|dir| std::fs::read_to_string(token_path(dir)).ok())
                .map(|text| text.trim().to_string())
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| CliError::new(format!("cannot start: {error}")))?;
        Ok(Client {
            authority: uri
                .authority()
                .map_or_else(|| format!("{host}:{port}"), ToString::to_string),
            url: url.trim_end_matches('/').to_string(),
            host,
            port,
            token,
            config_path,
            own_server,
            runtime,
        })
    }

    pub(super) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.call(Method::GET, path, None::<&()>)
    }

    pub(super) fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, CliError> {
        self.call(Method::POST, path, Some(body))
    }

    pub(super) fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, CliError> {
        self.call(Method::PUT, path, Some(body))
    }

    pub(super) fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.call(Method::DELETE, path, None::<&()>)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, CliError> {
        let mut bytes = Vec::new();
        self.stream(method, path, body, |chunk| {
            bytes.extend_from_slice(chunk);
            ControlFlow::Continue(())
        })?;
        serde_json::from_slice(&bytes).map_err(|error| {
            CliError::new(format!("unexpected answer from {}{path}: {error}", self.url))
                .hint("is that a ten server of the same version? `ten --version` and the server's log tell")
        })
    }

    /// Sends a request and hands every chunk of a successful answer to `on_chunk` as it
    /// arrives, until the body ends or `on_chunk` breaks.
    pub(super) fn stream(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        mut on_chunk: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<(), CliError> {
        let payload = match body {
            Some(body) => {
                serde_json::to_vec(body).map_err(|error| CliError::new(error.to_string()))?
            }
            None => Vec::new(),
        };
        self.runtime.block_on(async {
            let mut response = self.send(method, path, payload, true).await?;
            let status = response.status();
            if !status.is_success() {
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map(|body| body.to_bytes())
                    .unwrap_or_default();
                if status == StatusCode::UNAUTHORIZED
                    && let Some(error) = self.another_config().await
                {
                    return Err(error);
                }
                return Err(self.error(status, &bytes));
            }
            while let Some(frame) = response.body_mut().frame().await {
                let frame = frame.map_err(|error| {
                    CliError::new(format!("the answer from {} broke off: {error}", self.url))
                })?;
                if let Some(data) = frame.data_ref()
                    && on_chunk(data).is_break()
                {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Sends one request (with the token when `authorized`) on a connection of its own.
    async fn send(
        &self,
        method: Method,
        path: &str,
        payload: Vec<u8>,
        authorized: bool,
    ) -> Result<hyper::Response<hyper::body::Incoming>, CliError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| self.unreachable(error))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| self.unreachable(std::io::Error::other(error)))?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(
                header::USER_AGENT,
                concat!("ten/", env!("CARGO_PKG_VERSION")),
            );
        if authorized && let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if !payload.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(payload)))
            .map_err(|error| CliError::new(error.to_string()))?;
        sender.send_request(request).await.map_err(|error| {
            CliError::new(format!("the request to {}{path} failed: {error}", self.url))
        })
    }

    /// When the server serves another config than the one in reach (its public `/health`
    /// says which, as a digest of its path), the error that says so: a token refused there
    /// is no surprise. Without a server of this config, that is the news: start one.
    async fn another_config(&self) -> Option<CliError> {
        let ours = crate::server::config_id(self.config_path.as_deref()?);
        let response = self
            .send(Method::GET, "/health", Vec::new(), false)
            .await
            .ok()?;
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let health: crate::api::types::HealthBody = serde_json::from_slice(&body).ok()?;
        let theirs = health.config?;
        (theirs != ours).then(|| {
            let config = self.config_path.as_deref().unwrap_or(Path::new(""));
            match &self.own_server {
                None => CliError::new(format!(
                    "no ten serve runs for {}: the server at {} serves another tenement.toml",
                    config.display(),
                    self.url
                ))
                .hint("start one with `ten serve`; `ten diff --offline` works without a server; if it runs elsewhere, point --server (TENEMENT_SERVER) at it"),
                Some(own) => CliError::new(format!(
                    "the server at {} serves another tenement.toml, not {}",
                    self.url,
                    config.display()
                ))
                .hint(format!(
                    "this config's server listens at {own}: point --server (TENEMENT_SERVER) there, or leave it out"
                )),
            }
        })
    }

    fn unreachable(&self, error: std::io::Error) -> CliError {
        CliError::new(format!("cannot reach the ten server at {}: {error}", self.url)).hint(
            "start it with `ten serve`, or point --server (TENEMENT_SERVER) at it; `ten diff --offline` works without a server",
        )
    }

    fn error(&self, status: StatusCode, bytes: &[u8]) -> CliError {
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => {
                let mut error = CliError::new(body.error).diagnostics(body.diagnostics);
                error.hint = body.hint;
                if status == StatusCode::UNAUTHORIZED && self.token.is_none() {
                    error.hint = Some(
                        "no API token found: pass --token (TENEMENT_TOKEN), or run the CLI where it can read {data_dir}/api_token".into(),
                    );
                }
                error
            }
            Err(_) => CliError::new(format!(
                "{} answered {status}: {}",
                self.url,
                String::from_utf8_lossy(bytes).trim()
            )),
        }
    }
}

pub(super) fn print_diagnostics(diagnostics: &[Diagnostic]) {
    if !diagnostics.is_empty() {
        print_stderr(&render_diagnostics(
            diagnostics,
            std::path::Path::new(""),
            stderr_style(),
        ));
    }
}

/// Splits a byte stream into lines (for newline-delimited JSON and server-sent events).
#[derive(Default)]
pub(super) struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    pub(super) fn feed(
        &mut self,
        chunk: &[u8],
        mut on_line: impl FnMut(&str) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        self.pending.extend_from_slice(chunk);
        while let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            on_line(text.trim_end_matches('\r'))?;
        }
        ControlFlow::Continue(())
    }
}
