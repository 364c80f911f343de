//! The `keyward` binary, driven as a user would: every command of docs/cli.md, on
//! SQLite and PostgreSQL, with the secrets hygiene check of issue 2's "done when".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod integration;
mod lifecycle;
mod setup;
mod support;
