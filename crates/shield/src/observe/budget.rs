//! The audit budget of one container's helper: at most [`ROWS_PER_MINUTE`] rows a minute
//! (a burst of that many, then one a second), so a workload spraying distinct destinations
//! or names cannot fill the operator's disk. What the budget refuses is counted and written
//! as one `suppressed` row per minute while it lasts.

use std::time::{Duration, Instant};

/// Rows the helper writes at most per minute, and the burst it may write at once.
pub const ROWS_PER_MINUTE: u32 = 60;

/// How often a `suppressed` row is written at most.
const REPORT_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Budget {
    tokens: f64,
    refilled: Instant,
    suppressed: u64,
    reported: Option<Instant>,
}

impl Budget {
    pub fn new(now: Instant) -> Self {
        Budget { tokens: f64::from(ROWS_PER_MINUTE), refilled: now, suppressed: 0, reported: None }
    }

    /// True when a row may be written now; false counts it as suppressed.
    pub fn take(&mut self, now: Instant) -> bool {
        let per_sec = f64::from(ROWS_PER_MINUTE) / 60.0;
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(f64::from(ROWS_PER_MINUTE));
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// The count of suppressed rows to report now, if any: at most once per minute, the
    /// first time as soon as something was suppressed.
    pub fn report_due(&mut self, now: Instant) -> Option<u64> {
        if self.suppressed == 0 || self.reported.is_some_and(|t| now.saturating_duration_since(t) < REPORT_EVERY) {
            return None;
        }
        self.reported = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_a_second_and_one_report_a_minute() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        let written = (0..100_000).filter(|_| b.take(t0)).count();
        assert_eq!(written, ROWS_PER_MINUTE as usize);
        assert_eq!(b.report_due(t0), Some(100_000 - u64::from(ROWS_PER_MINUTE)));
        assert_eq!(b.report_due(t0), None, "nothing new suppressed");
        // A second later one more row may go; the rest wait for the next report.
        let t1 = t0 + Duration::from_secs(1);
        assert!(b.take(t1));
        assert!(!b.take(t1));
        assert_eq!(b.report_due(t1), None, "at most one report a minute");
        assert_eq!(b.report_due(t0 + Duration::from_secs(61)), Some(1));
        // A full minute of quiet refills the burst, never beyond it.
        let t2 = t0 + Duration::from_secs(600);
        assert_eq!((0..1000).filter(|_| b.take(t2)).count(), ROWS_PER_MINUTE as usize);
    }
}
