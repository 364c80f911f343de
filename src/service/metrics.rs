//! Counters for `/metrics`: logins by login type and status (R-L9's words). Kept per process,
//! as Prometheus expects; it sums the nodes.

use crate::domain::login::{Channel, LoginStatus};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    logins: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    addresses_limited: AtomicU64,
}

impl Metrics {
    pub fn count_login(&self, channel: Channel, status: LoginStatus) {
        if let Ok(mut m) = self.logins.lock() {
            *m.entry((channel.login_type(), status.as_str()))
                .or_default() += 1;
        }
    }

    /// An address reached the per-address failed-login limit.
    pub fn count_address_limited(&self) {
        self.addresses_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn addresses_limited(&self) -> u64 {
        self.addresses_limited.load(Ordering::Relaxed)
    }

    /// `(login type, status, count)`, sorted.
    pub fn logins(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.logins
            .lock()
            .map(|m| m.iter().map(|(&(t, s), &n)| (t, s, n)).collect())
            .unwrap_or_default()
    }
}
