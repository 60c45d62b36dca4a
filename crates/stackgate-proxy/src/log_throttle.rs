//! A warning that can fire thousands of times a second under pressure (a full listener, an app
//! at its connection cap) is counted each time but written at most once a minute, with the count
//! since the last line: the log stays readable and the disk does not fill.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const EVERY: Duration = Duration::from_secs(60);

/// Counts occurrences and says when the next log line is due.
#[derive(Default)]
pub(crate) struct OncePerMinute(Mutex<Unlogged>);

#[derive(Default)]
struct Unlogged {
    count: u64,
    logged_at: Option<Instant>,
}

impl OncePerMinute {
    /// Counts one occurrence; when a line is due, the count since the last one (this one
    /// included), for the caller to log.
    pub(crate) fn count(&self) -> Option<u64> {
        let mut unlogged = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        unlogged.count += 1;
        if unlogged.logged_at.is_some_and(|at| at.elapsed() < EVERY) {
            return None;
        }
        unlogged.logged_at = Some(Instant::now());
        Some(std::mem::take(&mut unlogged.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_occurrence_is_logged_then_one_line_a_minute_with_the_count_between() {
        let throttle = OncePerMinute::default();
        assert_eq!(throttle.count(), Some(1));
        assert_eq!(throttle.count(), None);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(throttle.count(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(throttle.count(), Some(3));
        assert_eq!(throttle.count(), None);
    }
}
