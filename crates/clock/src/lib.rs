//! The one clock.
//!
//! GP2GP is full of waiting: retry a message after two hours, give up on a transfer after
//! eight days, keep state for twelve weeks. Every part of Lloyd that needs the time or needs
//! to wait asks a [`Clock`] rather than the operating system, so that:
//!
//! - production uses [`SystemClock`], real time;
//! - tests use [`ManualClock`] and move time forward by hand: eight days pass in a call;
//! - the demo can run days in seconds by advancing a [`ManualClock`] from a task.
//!
//! Times are Unix milliseconds (`i64`), the form they are stored in everywhere.

mod utc;

pub use utc::Utc;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// The source of time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Waits until the clock reads at least `deadline_ms`.
    fn sleep_until(
        &self,
        deadline_ms: i64,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// Waits for `d` of this clock's time.
    fn sleep(&self, d: Duration) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let deadline = self
            .now_ms()
            .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.sleep_until(deadline)
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// Real time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }

    fn sleep_until(
        &self,
        deadline_ms: i64,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = deadline_ms.saturating_sub(self.now_ms()).max(0);
        Box::pin(tokio::time::sleep(Duration::from_millis(
            wait.unsigned_abs(),
        )))
    }
}

/// Time that moves only when told to. Sleepers wake when [`advance`](Self::advance) or
/// [`set`](Self::set) carries the clock past their deadline.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<i64>>,
    tick: watch::Sender<i64>,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: i64) -> ManualClock {
        let (tick, _) = watch::channel(start_ms);
        ManualClock {
            now: Arc::new(Mutex::new(start_ms)),
            tick,
        }
    }

    /// Moves time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let step = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let now = {
            let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
            *now = now.saturating_add(step);
            *now
        };
        self.tick.send_replace(now);
    }

    /// Sets the time (never backwards: a clock that runs back breaks every deadline).
    pub fn set(&self, ms: i64) {
        let now = {
            let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
            *now = (*now).max(ms);
            *now
        };
        self.tick.send_replace(now);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep_until(
        &self,
        deadline_ms: i64,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut rx = self.tick.subscribe();
        Box::pin(async move {
            loop {
                if *rx.borrow_and_update() >= deadline_ms || self.now_ms() >= deadline_ms {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleeper_wakes_only_when_time_passes_its_deadline() {
        let clock = ManualClock::new(1_000);
        let c2 = clock.clone();
        let sleeper = tokio::spawn(async move {
            c2.sleep(Duration::from_secs(8 * 24 * 3600)).await;
            c2.now_ms()
        });
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(7 * 24 * 3600));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke a day early");
        clock.advance(Duration::from_secs(24 * 3600));
        let woke_at = sleeper.await.unwrap();
        assert_eq!(woke_at, 1_000 + 8 * 24 * 3600 * 1000);
    }

    #[test]
    fn manual_time_never_runs_backwards() {
        let clock = ManualClock::new(5_000);
        clock.set(1_000);
        assert_eq!(clock.now_ms(), 5_000);
        clock.set(9_000);
        assert_eq!(clock.now_ms(), 9_000);
    }

    #[tokio::test]
    async fn the_system_clock_is_near_real_time_and_sleeps() {
        let c = SystemClock;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!((c.now_ms() - now).abs() < 1_000);
        let before = c.now_ms();
        c.sleep(Duration::from_millis(20)).await;
        assert!(c.now_ms() >= before + 20);
    }
}
