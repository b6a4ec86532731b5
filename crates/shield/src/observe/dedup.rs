//! The 30-second window per key (observe.md §4.6): one report per domain or address, however
//! many packets a flood sends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Keys kept at most; expired ones are pruned first.
const MAX_KEYS: usize = 4096;

#[derive(Debug)]
pub struct Window {
    span: Duration,
    marked: HashMap<String, Instant>,
}

impl Window {
    pub fn new(span: Duration) -> Self {
        Window { span, marked: HashMap::new() }
    }

    /// `key` was not marked within the span before `now`.
    pub fn due(&self, key: &str, now: Instant) -> bool {
        self.marked.get(key).is_none_or(|t| now.duration_since(*t) >= self.span)
    }

    pub fn mark(&mut self, key: &str, now: Instant) {
        if self.marked.len() >= MAX_KEYS {
            let span = self.span;
            self.marked.retain(|_, t| now.duration_since(*t) < span);
            if self.marked.len() >= MAX_KEYS {
                self.marked.clear();
            }
        }
        self.marked.insert(key.to_string(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_report_per_span() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(30));
        assert!(w.due("a", t0));
        w.mark("a", t0);
        assert!(!w.due("a", t0 + Duration::from_secs(29)));
        assert!(w.due("b", t0));
        assert!(w.due("a", t0 + Duration::from_secs(30)));
        for i in 0..MAX_KEYS + 10 {
            w.mark(&i.to_string(), t0);
        }
        assert!(w.marked.len() <= MAX_KEYS);
    }
}
