//! ten: run many small, mostly idle HTTP services on one Linux server, kept exactly as files
//! declare. See docs/ARCHITECTURE.md for the map of modules and their invariants.

pub mod api;
pub mod body;
pub mod cli;
pub mod config;
pub mod desired;
pub mod events;
pub mod files;
pub mod metrics;
pub mod names;
pub mod observed;
pub mod plan;
pub mod proxy;
pub mod reconcile;
pub mod render;
pub mod runtime;
pub mod server;
pub mod supervisor;
pub mod watch;
