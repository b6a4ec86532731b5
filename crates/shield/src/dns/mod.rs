//! DNS: how allowlisted domains reach the allow sets.

pub mod resolve;
pub mod tier;

pub use tier::{detect, Detection, DnsTier};
