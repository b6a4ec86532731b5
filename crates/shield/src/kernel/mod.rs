//! What talks to the kernel's networking, each in the caller's current network namespace
//! unless told otherwise: entering namespaces ([`netns`]), netfilter netlink ([`netlink`]:
//! set elements in [`nftnl`], flows in [`conntrack`], logged packets in [`nflog`]), and the
//! `nft` tool ([`nft`]).

pub mod conntrack;
pub mod netlink;
pub mod netns;
pub mod nflog;
pub mod nft;
pub mod nftnl;

pub use netlink::NetlinkError;
pub use netns::NetnsError;
pub use nft::NftError;
