//! When the supervisor may restart an unhealthy container: at once the first time, then
//! after delays that double, and not more than the service's `restart-limit` within its
//! window; past that it gives up until the service is healthy again (or replaced). Restarts
//! count for the whole window, healthy spells in between or not.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::manifest::RestartLimit;

/// The longest pause between two restarts.
const MAX_DELAY: Duration = Duration::from_secs(300);
/// The pause after the first restart of a window; each further one doubles it.
const FIRST_DELAY: Duration = Duration::from_secs(2);

/// What to do about an unhealthy container now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart it now; this is restart `n` of the window.
    Restart { n: u32 },
    /// Not before then (the backoff).
    Wait(Instant),
    /// The limit is reached: no more restarts. `newly` on the first time it is decided.
    GiveUp { newly: bool },
}

/// One service's restarts by the supervisor.
#[derive(Debug, Clone)]
pub struct Restarts {
    limit: RestartLimit,
    /// When each restart of the window was made, oldest first.
    made: VecDeque<Instant>,
    gave_up: bool,
    /// Every restart since the supervisor started, for the metrics.
    pub total: u64,
}

impl Restarts {
    pub fn new(limit: RestartLimit) -> Self {
        Restarts {
            limit,
            made: VecDeque::new(),
            gave_up: false,
            total: 0,
        }
    }

    /// The delay after `n` restarts in the window.
    fn delay(n: usize) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (n - 1).min(16);
        (FIRST_DELAY * factor).min(MAX_DELAY)
    }

    /// What to do about the container being unhealthy at `now`.
    pub fn decide(&mut self, now: Instant) -> Decision {
        let window = self.limit.within.0;
        while self
            .made
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            self.made.pop_front();
        }
        if self.gave_up {
            return Decision::GiveUp { newly: false };
        }
        if self.made.len() >= self.limit.count as usize {
            self.gave_up = true;
            return Decision::GiveUp { newly: true };
        }
        if let Some(last) = self.made.back() {
            let at = *last + Self::delay(self.made.len());
            if now < at {
                return Decision::Wait(at);
            }
        }
        Decision::Restart {
            n: self.made.len() as u32 + 1,
        }
    }

    /// A restart was made at `now`.
    pub fn restarted(&mut self, now: Instant) {
        self.made.push_back(now);
        self.total += 1;
    }

    /// The service is healthy again: restarts may be tried again when it next turns
    /// unhealthy, but those of the window still count, so one that flaps reaches its limit.
    pub fn recovered(&mut self) {
        self.gave_up = false;
    }

    /// The container was replaced (an apply, a `start` by the user): a fresh start.
    pub fn reset(&mut self) {
        self.made.clear();
        self.gave_up = false;
    }

    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    pub fn limit(&self) -> RestartLimit {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Duration as D;

    #[test]
    fn restarts_at_once_then_with_doubling_delays_then_gives_up() {
        let mut r = Restarts::new(RestartLimit {
            count: 3,
            within: D(Duration::from_secs(600)),
        });
        let t0 = Instant::now();
        assert_eq!(r.decide(t0), Decision::Restart { n: 1 });
        r.restarted(t0);
        assert_eq!(r.decide(t0), Decision::Wait(t0 + Duration::from_secs(2)));
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(r.decide(t1), Decision::Restart { n: 2 });
        r.restarted(t1);
        assert_eq!(r.decide(t1), Decision::Wait(t1 + Duration::from_secs(4)));
        let t2 = t1 + Duration::from_secs(4);
        assert_eq!(r.decide(t2), Decision::Restart { n: 3 });
        r.restarted(t2);
        assert_eq!(
            r.decide(t2 + Duration::from_secs(60)),
            Decision::GiveUp { newly: true }
        );
        assert_eq!(
            r.decide(t2 + Duration::from_secs(61)),
            Decision::GiveUp { newly: false }
        );
        assert!(r.gave_up());
        // Healthy for a while, then unhealthy again: the window's restarts still count.
        r.recovered();
        assert_eq!(
            r.decide(t2 + Duration::from_secs(62)),
            Decision::GiveUp { newly: true }
        );
        r.reset();
        assert_eq!(
            r.decide(t2 + Duration::from_secs(62)),
            Decision::Restart { n: 1 }
        );
        assert_eq!(r.total, 3);
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let mut r = Restarts::new(RestartLimit {
            count: 1,
            within: D(Duration::from_secs(10)),
        });
        let t0 = Instant::now();
        r.restarted(t0);
        assert_eq!(
            r.decide(t0 + Duration::from_secs(11)),
            Decision::Restart { n: 1 }
        );
    }

    #[test]
    fn the_delay_is_capped() {
        assert_eq!(Restarts::delay(30), MAX_DELAY);
        assert_eq!(Restarts::delay(1), FIRST_DELAY);
    }
}
