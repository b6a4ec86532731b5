//! The live overlay: at most one entry per target and port scope, the last writer wins.

use crate::grammar::Entry;

/// Put `entry` at the end in place of the entry naming the same target and port scope. The
/// target's entries with other scopes stay: each is in force in the kernel on its own
/// (`allow C host` after `deny C host:22` leaves port 22 denied; `allow C host:22` undoes it).
pub fn upsert(live: &mut Vec<Entry>, entry: Entry) {
    live.retain(|e| e.target != entry.target || e.ports != entry.ports);
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
        let scoped = |line: &str| Entry::parse(line).unwrap_or_else(|e| panic!("{e}"));
        upsert(&mut live, scoped("+1.2.3.4:443"));
        upsert(&mut live, scoped("-1.2.3.4:22"));
        upsert(&mut live, scoped("-1.2.3.4:443"));
        assert_eq!(render_policy(&live), "+a.example\n-1.2.3.4\n-1.2.3.4:22\n-1.2.3.4:443\n");
        upsert(&mut live, scoped("+1.2.3.4"));
        assert_eq!(render_policy(&live), "+a.example\n-1.2.3.4:22\n-1.2.3.4:443\n+1.2.3.4\n");
        upsert(&mut live, scoped("+1.2.3.4:22"));
        assert_eq!(render_policy(&live), "+a.example\n-1.2.3.4:443\n+1.2.3.4\n+1.2.3.4:22\n");
    }
}
