//! `ten serve`: assembles the server (reconciler, instance tasks, file watcher, log capture,
//! HTTP front) and runs it until SIGTERM or SIGINT.
//!
//! `options`: what `ten serve` is asked and how a start fails; `lock`: ten's own directory in
//! the data directory and its lock; `info`: `serve.json` and the registry of running servers,
//! where the CLI finds a server; `prepare`: startup before anything is served (files, lock,
//! ports, runtime, what the last ten left); `run`: `serve` itself, the announcement and the
//! shutdown; `listen`, `https`, `http`, `connection`: the HTTP front.

pub(crate) mod connection;
pub(crate) mod http;
pub(crate) mod https;
mod info;
pub(crate) mod listen;
mod lock;
mod options;
mod prepare;
mod run;

pub(crate) use info::{ServeInfo, config_id, find_server, read_serve_info, server_on_port};
pub(crate) use lock::data_dir_server;
pub(crate) use options::{ServeError, ServeOptions};
pub(crate) use prepare::Listening;
pub(crate) use run::serve;
