//! Growing delays after failed sign-ins, per account and per client IP.
//!
//! The first few failures cost nothing (people mistype); after that each failure doubles the
//! wait before the next attempt is even checked, up to a ceiling. An IP gets more free failures
//! than an account, since many people can share one address. Counting is per process: with
//! several replicas an attacker gets each replica's allowance, which still caps guessing at a
//! handful of tries per doubling delay. The passkey path (no password to guess) is not throttled
//! by account, so an account under attack can still sign in with its passkey.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

const FREE_PER_ACCOUNT: u32 = 5;
const FREE_PER_IP: u32 = 20;
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Strikes this old are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
const MAX_KEYS: usize = 100_000;

#[derive(Clone, Copy)]
struct Strikes {
    failures: u32,
    last: Instant,
}

fn delay(failures: u32, free: u32) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    let doublings = (failures - free).min(20);
    Duration::from_secs(1u64 << doublings).min(MAX_DELAY)
}

#[derive(Default)]
pub struct Throttle {
    strikes: Mutex<HashMap<String, Strikes>>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Throttle")
    }
}

fn keys(account: &str, ip: Option<&str>) -> [(Option<String>, u32); 2] {
    let account: String = account.trim().to_lowercase().chars().take(64).collect();
    [
        (Some(format!("a:{account}")), FREE_PER_ACCOUNT),
        (ip.map(|ip| format!("i:{ip}")), FREE_PER_IP),
    ]
}

impl Throttle {
    /// How long the caller must still wait before this attempt is checked, if at all.
    pub fn wait(&self, account: &str, ip: Option<&str>) -> Option<Duration> {
        let strikes = self.strikes.lock().ok()?;
        keys(account, ip)
            .into_iter()
            .filter_map(|(key, free)| {
                let s = strikes.get(&key?)?;
                delay(s.failures, free).checked_sub(s.last.elapsed())
            })
            .filter(|d| !d.is_zero())
            .max()
    }

    pub fn failed(&self, account: &str, ip: Option<&str>) {
        let Ok(mut strikes) = self.strikes.lock() else {
            return;
        };
        if strikes.len() >= MAX_KEYS {
            strikes.retain(|_, s| s.last.elapsed() < FORGET_AFTER);
            if strikes.len() >= MAX_KEYS {
                strikes.clear();
            }
        }
        for (key, _) in keys(account, ip) {
            let Some(key) = key else { continue };
            let entry = strikes.entry(key).or_insert(Strikes {
                failures: 0,
                last: Instant::now(),
            });
            if entry.last.elapsed() >= FORGET_AFTER {
                entry.failures = 0;
            }
            entry.failures = entry.failures.saturating_add(1);
            entry.last = Instant::now();
        }
    }

    /// A successful sign-in clears the account's strikes (not the IP's).
    pub fn succeeded(&self, account: &str) {
        if let Ok(mut strikes) = self.strikes.lock()
            && let [(Some(key), _), _] = keys(account, None)
        {
            strikes.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_failures_and_double() {
        assert_eq!(delay(4, 5), Duration::ZERO);
        assert_eq!(delay(5, 5), Duration::from_secs(1));
        assert_eq!(delay(6, 5), Duration::from_secs(2));
        assert_eq!(delay(9, 5), Duration::from_secs(16));
        assert_eq!(delay(60, 5), MAX_DELAY);
    }

    #[test]
    fn an_account_is_throttled_whatever_the_address_and_case() {
        let throttle = Throttle::default();
        for i in 0..FREE_PER_ACCOUNT {
            assert_eq!(throttle.wait("Ana", Some(&format!("10.0.0.{i}"))), None);
            throttle.failed("Ana", Some(&format!("10.0.0.{i}")));
        }
        assert!(throttle.wait("ana", Some("10.9.9.9")).is_some());
        assert_eq!(throttle.wait("bea", Some("10.9.9.9")), None);
        throttle.succeeded("ANA");
        assert_eq!(throttle.wait("ana", Some("10.9.9.9")), None);
    }

    #[test]
    fn an_address_is_throttled_across_accounts() {
        let throttle = Throttle::default();
        for i in 0..FREE_PER_IP {
            throttle.failed(&format!("user{i}"), Some("10.0.0.1"));
        }
        assert!(throttle.wait("someone-else", Some("10.0.0.1")).is_some());
        assert_eq!(throttle.wait("someone-else", Some("10.0.0.2")), None);
    }
}
