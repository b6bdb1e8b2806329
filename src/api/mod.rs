//! The control API: JSON over HTTP under the root domain (`/api/...`), bearer tokens.
//! `types` holds its wire types; `route` its routes and what each needs of the token;
//! `routes` its handlers (`edits` those that edit instance files, `bulk` those of many
//! instances at once); `tokens` the token store; `auth` the
//! check of a request's token; `scope` what each token may do; `limiter` failed checks per
//! address; `metrics` the `/metrics` scrape; `settle` waits for actions to take effect.

pub(crate) mod auth;
mod bulk;
mod edits;
pub(crate) mod error;
pub(crate) mod limiter;
pub(crate) mod metrics;
pub(crate) mod route;
pub(crate) mod routes;
pub(crate) mod scope;
pub(crate) mod settle;
pub(crate) mod state;
mod streams;
pub(crate) mod tokens;
pub mod types;
pub(crate) mod views;
