//! The control API: JSON over HTTP under the root domain (`/api/...`), bearer tokens.
//! `types` holds its wire types; `route` its routes and what each needs of the token;
//! `routes` its handlers; `tokens` the token store; `auth` the
//! check of a request's token; `scope` what each token may do; `limiter` failed checks per
//! address; `metrics` the `/metrics` scrape; `settle` waits for actions to take effect.

pub mod auth;
mod edits;
pub mod error;
pub mod limiter;
pub mod metrics;
pub mod route;
pub mod routes;
pub mod scope;
pub mod settle;
pub mod state;
mod streams;
pub mod tokens;
pub mod types;
pub mod views;
