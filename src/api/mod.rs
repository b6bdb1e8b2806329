//! The control API: JSON over HTTP under the root domain (`/api/...`), bearer token.
//! `types` holds its wire types; `routes` its handlers; `settle` waits for actions to take
//! effect.

pub mod auth;
pub mod body;
pub mod routes;
pub mod settle;
pub mod types;
