//! Checks a listed table (`nft list table inet terok_shield`) against the invariants of its
//! posture, and tells which posture a listing is in (ruleset.md §7).
//!
//! Beyond the reference's substring checks, rules are checked per chain and in order: the
//! hard-deny floor precedes the override tier, denies precede every allow tier, and the
//! terminal reject is the last rule of the output chain.

use std::collections::BTreeMap;

use crate::constants::{hard_deny, private_ranges, PREFIX_BLOCKED, PREFIX_BYPASS, TABLE};
use crate::portmap::{MARK_BASE, MARK_MASK};
use crate::posture::Posture;

/// The state word of `status CONTAINER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShieldState {
    Up,
    Down,
    Disengaged,
    Quarantine,
    Offline,
    Error,
}

impl ShieldState {
    pub fn as_str(self) -> &'static str {
        match self {
            ShieldState::Up => "up",
            ShieldState::Down => "down",
            ShieldState::Disengaged => "disengaged",
            ShieldState::Quarantine => "quarantine",
            ShieldState::Offline => "offline",
            ShieldState::Error => "error",
        }
    }
}

/// The broken invariants of a listing, in the order they were found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct VerifyError(pub Vec<String>);

#[derive(Debug, Default)]
struct Chain {
    policy: Option<String>,
    rules: Vec<String>,
}

#[derive(Debug, Default)]
struct Listing {
    table: bool,
    sets: Vec<String>,
    chains: BTreeMap<String, Chain>,
}

fn parse(text: &str) -> Listing {
    let mut l = Listing::default();
    let mut depth = 0usize;
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim();
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        if depth == 0 && line.strip_prefix("table ").is_some_and(|t| t.starts_with(TABLE)) && opens > closes {
            l.table = true;
        } else if depth == 1 && opens > 0 {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("set" | "map"), Some(name)) => l.sets.push(name.to_string()),
                (Some("chain"), Some(name)) if opens > closes => {
                    current = Some(name.to_string());
                    l.chains.entry(name.to_string()).or_default();
                }
                _ => {}
            }
        } else if depth == 2 && opens == closes && !line.is_empty() {
            if let Some(chain) = current.as_ref().and_then(|c| l.chains.get_mut(c)) {
                if line.starts_with("type ") {
                    chain.policy = line.split("policy ").nth(1).map(|p| p.trim_end_matches(';').trim().to_string());
                } else {
                    chain.rules.push(line.to_string());
                }
            }
        }
        depth = (depth + opens).saturating_sub(closes);
        if depth < 2 {
            current = None;
        }
    }
    l
}

struct Checker<'a> {
    listing: &'a Listing,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn require(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.errors.push(what());
        }
    }

    fn output(&self) -> &[String] {
        self.listing.chains.get("output").map_or(&[], |c| &c.rules)
    }

    fn policy_is(&mut self, chain: &str, policy: &str) {
        let actual = self.listing.chains.get(chain).and_then(|c| c.policy.clone());
        self.require(actual.as_deref() == Some(policy), || match actual {
            Some(p) => format!("chain {chain} has policy {p}, expected {policy}"),
            None => format!("chain {chain} missing"),
        });
    }

    fn all_sets(&mut self) {
        for set in crate::sets::SetId::all() {
            let present = self.listing.sets.iter().any(|s| s == set.name());
            self.require(present, || format!("set {set} missing"));
        }
    }

    /// Index of the first output rule rejecting `range`.
    fn range_reject(&self, range: &str) -> Option<usize> {
        let needle = format!("daddr {range} ");
        self.output().iter().position(|r| r.contains(&needle) && r.contains("reject"))
    }

    fn first(&self, pred: impl Fn(&str) -> bool) -> Option<usize> {
        self.output().iter().position(|r| pred(r))
    }

    fn last(&self, pred: impl Fn(&str) -> bool) -> Option<usize> {
        self.output().iter().rposition(|r| pred(r))
    }

    fn ranges_rejected(&mut self) -> (Option<usize>, Option<usize>) {
        let mut hard_last = None;
        for range in hard_deny() {
            let at = self.range_reject(range);
            self.require(at.is_some(), || format!("no reject rule for hard-deny range {range}"));
            hard_last = hard_last.max(at);
        }
        let mut private_first: Option<usize> = None;
        for range in private_ranges() {
            let at = self.range_reject(range);
            self.require(at.is_some(), || format!("no reject rule for private range {range}"));
            private_first = match (private_first, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        (hard_last, private_first)
    }

    /// The floors of an enforcing posture (UP, DOWN): every hard-deny and private range is
    /// rejected, the hard-deny floor precedes the override tier, and all four deny-tier sets
    /// reject. Returns the index of the first private-range reject.
    fn enforcing_floor(&mut self) -> Option<usize> {
        let (hard_last, private_first) = self.ranges_rejected();
        let t10_first = self.first(|r| uses(r, "t10_"));
        self.require(t10_first.is_some(), || "the override tier's rules are missing".into());
        self.before(hard_last, t10_first, "the hard-deny floor is not above the override tier");
        let t20_rejects = self.output().iter().filter(|r| uses(r, "t20_") && r.contains("reject")).count();
        // Every deny set is matched by a reject; a port map only sets the mark its scope
        // set's reject matches.
        let t20_sets = crate::sets::SetId::all().filter(|s| s.denies() && !s.is_map()).count();
        self.require(t20_rejects == t20_sets, || "the deny tier does not reject".into());
        self.marks_reset(t10_first);
        private_first
    }

    /// A mark in the scope-id range is cleared before the first rule of any tier (so a mark
    /// the container set never reads as a scope), and nothing after sets a mark but the
    /// port maps.
    fn marks_reset(&mut self, t10_first: Option<usize>) {
        let reset = format!("meta mark {MARK_BASE:#010x}/{} meta mark set 0x00000000", MARK_MASK.count_ones());
        let at = self.first(|r| r == reset);
        self.require(at.is_some(), || "the scope marks are not cleared".into());
        self.before(at, t10_first, "the scope marks are cleared below the override tier");
        let stray = self.output().iter().enumerate().any(|(i, r)| {
            r.contains("mark set") && Some(i) != at && !(r.starts_with("meta mark set ") && r.contains("daddr map @t"))
        });
        self.require(!stray, || "a rule sets the mark other than through a port map".into());
    }

    fn bypass_logged(&mut self) {
        let logged = self.first(|r| r.contains(PREFIX_BYPASS)).is_some();
        self.require(logged, || "no TEROK_SHIELD_BYPASS log rule".into());
    }

    fn before(&mut self, a: Option<usize>, b: Option<usize>, what: &str) {
        if let (Some(a), Some(b)) = (a, b) {
            self.require(a < b, || what.to_string());
        }
    }
}

fn uses(rule: &str, prefix: &str) -> bool {
    rule.contains(&format!("@{prefix}"))
}

/// Check `text` against the invariants of `posture`.
pub fn verify(posture: Posture, text: &str) -> Result<(), VerifyError> {
    let listing = parse(text);
    let mut c = Checker { listing: &listing, errors: Vec::new() };
    c.require(listing.table, || format!("table {TABLE} missing"));
    c.policy_is("input", "drop");
    let output_policy = if matches!(posture, Posture::Up | Posture::Quarantine) { "drop" } else { "accept" };
    c.policy_is("output", output_policy);
    match posture {
        Posture::Up => {
            c.all_sets();
            let terminal = c.output().last().is_some_and(|r| {
                r.starts_with("log ") && r.contains(PREFIX_BLOCKED) && r.contains("reject with icmpx admin-prohibited")
            });
            c.require(terminal, || "the last output rule is not the logged admin-prohibited reject".into());
            let private_first = c.enforcing_floor();
            let t20_last = c.last(|r| uses(r, "t20_"));
            let allow_first = c.first(|r| uses(r, "t30_") || uses(r, "t40_"));
            c.require(allow_first.is_some(), || "the allow tiers' rules are missing".into());
            c.before(t20_last, allow_first, "the deny tier is not above the allow tiers");
            c.before(private_first, allow_first, "the private-range rejects are not above the allow tiers");
        }
        Posture::Down => {
            c.all_sets();
            c.bypass_logged();
            c.enforcing_floor();
        }
        Posture::Disengaged => {
            c.all_sets();
            c.bypass_logged();
            let rejects = c.first(|r| r.contains("reject") || r.trim_end().ends_with("drop")).is_some();
            c.require(!rejects, || "a disengaged table must not reject or drop".into());
        }
        Posture::Quarantine => {
            c.require(listing.sets.is_empty(), || "a quarantine table must declare no sets".into());
            let rules = c.output().to_vec();
            let only_lo_established_drop = rules.len() == 3
                && rules[0].starts_with("oifname \"lo\" accept")
                && rules[1].starts_with("ct state established,related accept")
                && rules[2].starts_with("log ")
                && rules[2].contains(PREFIX_BLOCKED)
                && rules[2].ends_with("drop");
            c.require(only_lo_established_drop, || {
                "the quarantine output chain must hold only lo, established and the logged drop".into()
            });
        }
    }
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(VerifyError(c.errors))
    }
}

/// The posture a listing is in: empty text is `offline`, a listing no posture accepts `error`.
pub fn classify(text: &str) -> ShieldState {
    if text.trim().is_empty() {
        return ShieldState::Offline;
    }
    for (posture, state) in [
        (Posture::Quarantine, ShieldState::Quarantine),
        (Posture::Down, ShieldState::Down),
        (Posture::Disengaged, ShieldState::Disengaged),
        (Posture::Up, ShieldState::Up),
    ] {
        if verify(posture, text).is_ok() {
            return state;
        }
    }
    ShieldState::Error
}
