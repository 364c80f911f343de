//! keyward: a login server for the Salesforce-style security-token model.
//! See ARCHITECTURE.md for the module map and the dependency rule.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod delegated;
pub mod domain;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod listing;
pub mod mail;
pub mod private_fs;
pub mod service;
pub mod store;
pub mod xml;
