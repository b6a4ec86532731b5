//! Confinement of the container's helper once its sockets are bound (decisions.md):
//!
//! * **Capabilities.** Only CAP_NET_ADMIN stays, and only with the resolver (it adds
//!   answered addresses to the sets and ends flows a deny cuts); the NFLOG reader alone
//!   keeps none. Every other capability leaves the bounding, permitted, effective,
//!   inheritable and ambient sets, so nothing the helper runs could regain it.
//! * **Landlock**, where the kernel offers it: the file system shrinks to the state dir
//!   (read and write), `/proc` (read: the container's first process is watched there) and
//!   the orchestrator's dossier file (read). No new privileges either.
//!
//! Both apply to the calling thread and what it starts; the helper has one thread.

use std::path::Path;

use landlock::{path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, ABI};

/// What was applied, in words for the helper's log.
pub fn helper(state_dir: &Path, dossier: Option<&Path>, keep_net_admin: bool) -> Vec<String> {
    vec![capabilities(keep_net_admin), landlock(state_dir, dossier)]
}

fn capabilities(keep_net_admin: bool) -> String {
    use caps::{CapSet, Capability, CapsHashSet};
    let permitted = match caps::read(None, CapSet::Permitted) {
        Ok(p) => p,
        Err(e) => return format!("capabilities: cannot read them ({e}); none dropped"),
    };
    let keep: CapsHashSet =
        [Capability::CAP_NET_ADMIN].into_iter().filter(|c| keep_net_admin && permitted.contains(c)).collect();
    // The bounding set first, while CAP_SETPCAP is still effective; a capability this
    // kernel does not know is not there to drop.
    let mut failed = Vec::new();
    for cap in caps::all().into_iter().filter(|c| !keep.contains(c)) {
        if caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false)
            && caps::drop(None, CapSet::Bounding, cap).is_err()
        {
            failed.push(cap.to_string());
        }
    }
    let sets = caps::clear(None, CapSet::Ambient)
        .and_then(|()| caps::set(None, CapSet::Inheritable, &CapsHashSet::new()))
        .and_then(|()| caps::set(None, CapSet::Effective, &keep))
        .and_then(|()| caps::set(None, CapSet::Permitted, &keep));
    let kept = if keep.is_empty() { "none".to_string() } else { "CAP_NET_ADMIN".to_string() };
    match (sets, failed.is_empty()) {
        (Ok(()), true) => format!("capabilities: kept {kept}"),
        (Ok(()), false) => format!("capabilities: kept {kept}; still in the bounding set: {}", failed.join(", ")),
        (Err(e), _) => format!("capabilities: could not be reduced ({e})"),
    }
}

fn landlock(state_dir: &Path, dossier: Option<&Path>) -> String {
    let abi = ABI::V5;
    let readable: Vec<&Path> = std::iter::once(Path::new("/proc")).chain(dossier).collect();
    let applied = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules([state_dir], AccessFs::from_all(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(readable, AccessFs::from_read(abi))))
        .and_then(|r| r.restrict_self());
    match applied {
        Ok(s) => match s.ruleset {
            RulesetStatus::FullyEnforced => "landlock: the state dir, /proc and the dossier only".into(),
            RulesetStatus::PartiallyEnforced => {
                "landlock: partly enforced (an older kernel): the state dir, /proc and the dossier only".into()
            }
            RulesetStatus::NotEnforced => {
                "landlock: not offered by this kernel; the file system is not confined".into()
            }
        },
        Err(e) => format!("landlock: not applied ({e})"),
    }
}
