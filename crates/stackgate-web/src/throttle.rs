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
/// Passkey sign-ins an address may start per minute. Each start stores a challenge before
/// anyone is known, so an unbounded stream would be free writes to the database.
const CEREMONIES_PER_MINUTE: u32 = 30;
const MINUTE: Duration = Duration::from_secs(60);

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
    /// Passkey sign-ins started, per address: the window's start and the count in it.
    ceremonies: Mutex<HashMap<String, (Instant, u32)>>,
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
    /// Starts an attempt: either the time the caller must still wait (nothing is checked), or
    /// `None` after counting the attempt as a failure up front. Counting before the slow check
    /// means a burst of parallel attempts is throttled like a sequence: the caller calls
    /// [`Throttle::succeeded`] or [`Throttle::passed_first_factor`] when it was not a failure.
    pub fn attempt(&self, account: &str, ip: Option<&str>) -> Option<Duration> {
        let Ok(mut strikes) = self.strikes.lock() else {
            // A poisoned lock must not open the gate: refuse for a moment.
            return Some(Duration::from_secs(1));
        };
        let wait = keys(account, ip)
            .into_iter()
            .filter_map(|(key, free)| {
                let s = strikes.get(&key?)?;
                delay(s.failures, free).checked_sub(s.last.elapsed())
            })
            .filter(|d| !d.is_zero())
            .max();
        if wait.is_none() {
            Self::strike(&mut strikes, account, ip);
        }
        wait
    }

    fn strike(strikes: &mut HashMap<String, Strikes>, account: &str, ip: Option<&str>) {
        if strikes.len() >= MAX_KEYS {
            strikes.retain(|_, s| s.last.elapsed() < FORGET_AFTER);
            // Addresses are cheap to vary (an IPv6 /64); accounts' strikes are kept first.
            if strikes.len() >= MAX_KEYS {
                strikes.retain(|key, _| key.starts_with("a:"));
            }
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

    /// Counts a passkey sign-in started from `ip`; the time to wait when the address has
    /// started too many this minute.
    pub fn ceremony_start(&self, ip: Option<&str>) -> Option<Duration> {
        let ip = ip?;
        let Ok(mut starts) = self.ceremonies.lock() else {
            return Some(Duration::from_secs(1));
        };
        if starts.len() >= MAX_KEYS {
            starts.retain(|_, (since, _)| since.elapsed() < MINUTE);
            if starts.len() >= MAX_KEYS {
                starts.clear();
            }
        }
        let (since, count) = starts.entry(ip.to_owned()).or_insert((Instant::now(), 0));
        if since.elapsed() >= MINUTE {
            *since = Instant::now();
            *count = 0;
        }
        if *count >= CEREMONIES_PER_MINUTE {
            return Some(
                MINUTE
                    .saturating_sub(since.elapsed())
                    .max(Duration::from_secs(1)),
            );
        }
        *count += 1;
        None
    }

    /// Takes back the strike [`Throttle::attempt`] counted, for an attempt that was right
    /// (a correct password before the second factor) but does not end the account's strikes.
    pub fn passed_first_factor(&self, account: &str, ip: Option<&str>) {
        if let Ok(mut strikes) = self.strikes.lock() {
            for (key, _) in keys(account, ip) {
                if let Some(s) = key.and_then(|key| strikes.get_mut(&key)) {
                    s.failures = s.failures.saturating_sub(1);
                }
            }
        }
    }

    /// A sign-in that passed every factor: the account's strikes end, the address's attempt
    /// is taken back.
    pub fn succeeded(&self, account: &str, ip: Option<&str>) {
        self.passed_first_factor(account, ip);
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
    fn passkey_sign_ins_are_limited_per_address_not_per_account() {
        let throttle = Throttle::default();
        for _ in 0..CEREMONIES_PER_MINUTE {
            assert_eq!(throttle.ceremony_start(Some("10.0.0.1")), None);
        }
        let wait = throttle.ceremony_start(Some("10.0.0.1")).expect("limited");
        assert!(wait <= MINUTE && wait >= Duration::from_secs(1));
        assert_eq!(
            throttle.ceremony_start(Some("10.0.0.2")),
            None,
            "another address is not"
        );
        // Failed passwords on an account do not touch its passkey path.
        for _ in 0..FREE_PER_ACCOUNT + 3 {
            throttle.attempt("ana", Some("10.0.0.3"));
        }
        assert_eq!(throttle.ceremony_start(Some("10.0.0.4")), None);
    }

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
            assert_eq!(throttle.attempt("Ana", Some(&format!("10.0.0.{i}"))), None);
        }
        assert!(throttle.attempt("ana", Some("10.9.9.9")).is_some());
        assert_eq!(throttle.attempt("bea", Some("10.9.9.9")), None);
        throttle.succeeded("ANA", None);
        assert_eq!(throttle.attempt("ana", Some("10.9.9.9")), None);
    }

    #[test]
    fn an_address_is_throttled_across_accounts() {
        let throttle = Throttle::default();
        for i in 0..FREE_PER_IP {
            assert_eq!(
                throttle.attempt(&format!("user{i}"), Some("10.0.0.1")),
                None
            );
        }
        assert!(throttle.attempt("someone-else", Some("10.0.0.1")).is_some());
        assert_eq!(throttle.attempt("someone-else", Some("10.0.0.2")), None);
    }

    #[test]
    fn right_answers_are_taken_back_but_a_password_alone_keeps_the_account_count() {
        let throttle = Throttle::default();
        for _ in 0..FREE_PER_ACCOUNT - 1 {
            assert_eq!(throttle.attempt("ana", Some("10.0.0.1")), None);
        }
        // Right password, second factor pending: that attempt is taken back, the rest stay.
        assert_eq!(throttle.attempt("ana", Some("10.0.0.1")), None);
        throttle.passed_first_factor("ana", Some("10.0.0.1"));
        assert_eq!(throttle.attempt("ana", Some("10.0.0.1")), None);
        assert!(throttle.attempt("ana", Some("10.0.0.1")).is_some());
    }
}
