//! The store and service suite: every test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod integration;
mod integration_guards;
mod lockout;
mod login;
mod orgs;
mod queries;
mod support;
mod tokens;
