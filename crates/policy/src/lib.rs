//! Pure policy model of terok-shield: no file system, no processes, no environment.
//!
//! * [`target`]: what an allow/deny names (address, network, domain, `localhost`), parsed strictly.
//! * [`grammar`]: the `+`/`-` policy-line grammar and its canonical rendering.
//! * [`tiers`]: the authored tiers plus the live overlay, and the effective policy they yield.
//! * [`ports`]: port scopes (`:443`, `:8000-8100/udp`).
//! * [`overlay`]: last-writer-wins upserts into the live overlay.
//! * [`profiles`]: profile-name validation and composition.
//! * [`ranges`]: the internal and metadata ranges (floors and rebind guard alike).
//! * [`rebind`]: the ranges a DNS answer may not open.
//! * [`domains`]: which names the shield's resolver answers.
//! * [`names`]: container-name validation; [`sanitize`]: display-safe strings.

pub mod domains;
pub mod grammar;
pub mod names;
pub mod overlay;
pub mod ports;
pub mod profiles;
pub mod ranges;
pub mod rebind;
pub mod sanitize;
pub mod target;
pub mod tiers;

pub use domains::{DomainRules, DomainVerdict, NameScope};
pub use grammar::{parse_policy, render_policy, Action, Entry, LineError, PolicyError};
pub use ports::{PortRange, Ports, Proto};
pub use target::{IpNet, Target, TargetError};
pub use tiers::{Effective, Tier, TierSet};
