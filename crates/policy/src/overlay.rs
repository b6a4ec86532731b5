//! The live overlay: at most one entry per target, the last writer wins.

use crate::grammar::Entry;

/// Replace any entry naming the same target with `entry`, appended at the end.
pub fn upsert(live: &mut Vec<Entry>, entry: Entry) {
    live.retain(|e| e.target != entry.target);
    live.push(entry);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grammar::{parse_policy, render_policy, Action};
    use crate::target::Target;

    #[test]
    fn last_writer_wins() {
        let mut live = parse_policy("+1.2.3.4\n+a.example\n", "live").unwrap_or_default();
        let target = Target::parse("1.2.3.4/32").unwrap_or(Target::Localhost);
        upsert(&mut live, Entry::new(Action::Deny, target));
        assert_eq!(render_policy(&live), "+a.example\n-1.2.3.4\n");
    }
}
