//! The nftables ruleset of terok-shield, as a pure function of its inputs: no I/O.
//!
//! * [`constants`]: table name, log prefixes, ranges.
//! * [`sets`]: the set catalogue, by typed identifier ([`SetId`]).
//! * [`facts`]: the network facts a ruleset depends on (DNS forwarder, ports, gateways).
//! * [`posture`]: the rules of UP, DOWN, DISENGAGED and QUARANTINE.
//! * [`scoped`]: elements of the port-scoped sets, made canonical.
//! * [`portmap`]: a tier's port-scoped entries as disjoint ranges with scope ids.
//! * [`seeds`]: `add element` statements for the authored addresses.
//! * [`script`]: the rest of the nft text: live element changes, flushes, table replacement,
//!   the arguments of nft queries, dnsmasq's set names.
//! * [`file`]: the bundle's `ruleset.nft` (written by prepare, split again by the hook).
//! * [`verify`]: checks a listed table against the invariants and classifies its posture.
//! * [`admission`]: whether a listed table would accept a flow (which flows a change ends).
//!
//! Every value that reaches the text is a typed, validated value (addresses, networks,
//! non-zero ports); nothing is interpolated from a raw string.

pub mod admission;
pub mod constants;
pub mod facts;
pub mod file;
pub mod portmap;
pub mod posture;
pub mod scoped;
pub mod script;
pub mod seeds;
pub mod sets;
pub mod verify;

pub use admission::{Flow, Listing};
pub use facts::NetFacts;
pub use file::ruleset_nft;
pub use posture::{render_table, Posture};
pub use scoped::Scoped;
pub use seeds::{seed_statements, Seeds};
pub use sets::{SetId, SetKind};
pub use verify::{classify, verify, ShieldState};
