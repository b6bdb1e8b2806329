//! ten: run many small, mostly idle HTTP services on one Linux server, kept exactly as files
//! declare. See docs/ARCHITECTURE.md for the map of modules and their invariants.

pub mod api;
pub(crate) mod body;
pub mod cli;
pub mod config;
pub(crate) mod dashboard;
pub mod desired;
pub(crate) mod events;
pub mod export;
pub(crate) mod files;
pub mod import;
pub(crate) mod metrics;
pub mod names;
pub mod observed;
pub mod plan;
pub(crate) mod proxy;
pub mod reconcile;
pub mod render;
pub mod runtime;
pub(crate) mod server;
pub mod supervisor;
pub mod tls;
pub mod watch;
