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
mod store;
pub mod xml;

/// The storage layer, for the integration tests and the benchmark tools only: the CLI, the web
/// pages and the APIs reach the database through [`service::Services`] and nothing else. Not an
/// API: it changes without notice.
#[doc(hidden)]
pub mod test_support {
    pub mod store {
        pub use crate::store::*;
    }

    /// The database behind the services.
    pub fn db(s: &crate::service::Services) -> &crate::store::Db {
        s.db_for_test_support()
    }
}
