//! The web UI's security and the admin JSON API, over HTTP through the real router, on SQLite
//! and PostgreSQL: page headers (CSP, no-store), cookie flags, CSRF refusals that change nothing,
//! R-M1 isolation between orgs by id (pages and API answer 404), integration tokens' pages, API
//! authentication, the API's flows, and schemathesis against the OpenAPI document (no 5xx). The browser journeys are in
//! tests/clients/web_test.mjs (headless Chromium).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;

mod api;
mod integration;
mod isolation;
mod login;
mod pages;
mod settings;
mod support;
