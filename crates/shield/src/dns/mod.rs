//! DNS: how allowlisted domains reach the allow sets.

pub mod cache;
pub mod conf;
pub mod dnsmasq;
pub mod resolve;
pub mod tier;
pub mod wire;

pub use tier::{detect, Detection, DnsTier};
