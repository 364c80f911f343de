//! The HTTP interfaces end to end, through the real router, middleware and accept loop, on
//! SQLite and PostgreSQL: SOAP `login`/`logout`/`getUserInfo`/`setPassword`/`changeOwnPassword`
//! (docs/wire.md §1),
//! OAuth (§2), the identity URL, sessions (R-L10), client IP (R-L11), lockout under parallel
//! attempts (R-L5), equal hash work (R-L4), delegated authentication (R-L7), hostile input,
//! integration tokens on the wire and through the admin API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod address_limit;
mod hostile;
mod integration;
mod integration_api;
mod login;
mod oauth;
mod passwords;
mod server;
mod sessions;
mod soap;
mod support;
