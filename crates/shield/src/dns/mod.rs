//! DNS: how allowlisted domains reach the allow sets.

pub mod tier;

pub use tier::{detect, Detection, DnsTier};
