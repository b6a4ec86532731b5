//! The nftables ruleset of terok-shield, as a pure function of its inputs: no I/O.
//!
//! * [`constants`]: table name, log prefixes, ranges, the set catalogue.
//! * [`facts`]: the network facts a ruleset depends on (DNS forwarder, ports, gateways).
//! * [`posture`]: the rules of UP, DOWN, DISENGAGED and QUARANTINE.
//! * [`seeds`]: `add element` statements for the authored addresses.
//! * [`verify`]: checks a listed table against the invariants and classifies its posture.
//!
//! Every value that reaches the text is a typed, validated value (addresses, networks,
//! non-zero ports); nothing is interpolated from a raw string.

pub mod constants;
pub mod facts;
pub mod posture;
pub mod seeds;
pub mod verify;

pub use facts::NetFacts;
pub use posture::{render_table, Posture};
pub use seeds::{seed_statements, Seeds};
pub use verify::{classify, verify, ShieldState};

/// The complete `ruleset.nft` of a bundle: the UP table, then the seed statements.
pub fn ruleset_nft(facts: &NetFacts, seeds: &Seeds) -> String {
    let mut out = render_table(Posture::Up, facts);
    for stmt in seed_statements(seeds, seeds::MAX_ELEMENTS_PER_STATEMENT, seeds::MAX_ELEMENTS_PER_STATEMENT) {
        out.push_str(&stmt);
        out.push('\n');
    }
    out
}
