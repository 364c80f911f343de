//! Pure rules and types: no I/O, no async, no clock reads. Everything here is decided from its
//! arguments, so every rule can be tested by a table.

pub mod ids;
pub mod integration;
pub mod ip;
pub mod jwt_bearer;
pub mod login;
pub mod policy;
pub mod profile;
pub mod secret;
pub mod throttle;
pub mod token;
pub mod validate;
pub mod verification;
