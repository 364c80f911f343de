//! What hostile testing found (issue 14), each on SQLite and PostgreSQL through the real HTTP
//! stack: a session alone never changes the credentials it came from, refresh tokens end with
//! their sessions, OAuth clients can be rotated, disabled and deleted, and the seams between
//! surfaces (web sessions on the API, unknown OAuth clients, forwarded addresses, other orgs'
//! ids, merge patches, hostile ids, session lifetimes, the admin API's error shape) hold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod addresses;
mod admin_api;
mod credentials;
mod delegated;
mod oauth_clients;
mod oracles;
mod sessions;
mod support;
