//! nft: load scripts, list our table, load a ruleset in bounded batches and verify it.
//!
//! Everything runs in the caller's current network namespace, or in a container's when
//! given its [`Namespaces`]. The scripts and arguments come from the ruleset crate; nft's
//! stderr is classified here, once, into [`Refusal`] so callers match variants.

use std::path::PathBuf;
use std::time::Duration;

use terok_shield_policy::IpNet;
use terok_shield_ruleset::seeds::{map_elements, port_load, port_statements, set_elements};
use terok_shield_ruleset::verify::{verify, VerifyError};
use terok_shield_ruleset::{render_table, script, NetFacts, Posture, Seeds, SetId, SetKind};

use super::netlink::NetlinkError;
use super::netns::Namespaces;
use crate::exec::{Cmd, ExecError, Output};
use crate::tools::{self, ToolMissing};

/// Elements per transaction: inside a user namespace nft cannot enlarge its netlink send
/// buffer, so one batch holds only a few thousand elements (plain sets fail between 8 000
/// and 16 000, interval sets between 4 000 and 8 000).
pub const BATCH_ADDRESSES: usize = 4000;
pub const BATCH_NETWORKS: usize = 1000;

const TIMEOUT: Duration = Duration::from_secs(30);

/// What nft's refusal says, read off its stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The table, set or element named does not exist (`No such file or directory`).
    NoSuchObject,
    /// `get element`: the set exists but not the element.
    NoSuchElement,
    /// The batch did not fit the netlink socket (`Message too long`).
    TooLong,
    /// `create` of something that is there already (`File exists`).
    Exists,
    Other,
}

impl Refusal {
    fn of(stderr: &str) -> Refusal {
        if stderr.contains("element does not exist") {
            Refusal::NoSuchElement
        } else if stderr.contains("No such file or directory") {
            Refusal::NoSuchObject
        } else if stderr.contains("Message too long") {
            Refusal::TooLong
        } else if stderr.contains("File exists") {
            Refusal::Exists
        } else {
            Refusal::Other
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    #[error(transparent)]
    Missing(#[from] ToolMissing),
    /// nft ran and refused.
    #[error("'{cmd}' failed (rc={rc}): {stderr}")]
    Refused { cmd: String, rc: i32, stderr: String, refusal: Refusal },
    /// nft could not be run, or did not finish in time.
    #[error(transparent)]
    Exec(ExecError),
    /// What loaded is not what was meant (the table was replaced by a quarantine).
    #[error("ruleset verification failed: {0}")]
    Unverified(#[from] VerifyError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

impl NftError {
    /// What nft's refusal said, when it refused.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            NftError::Refused { refusal, .. } => Some(*refusal),
            _ => None,
        }
    }
}

impl From<ExecError> for NftError {
    fn from(e: ExecError) -> Self {
        match e {
            // 127 and -1: nft could not be started at all.
            ExecError::Failed { cmd, rc, stderr } if rc > 0 && rc != 127 => {
                NftError::Refused { refusal: Refusal::of(&stderr), cmd, rc, stderr }
            }
            other => NftError::Exec(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, NftError>;

/// The `nft` binary and the environment it runs with.
#[derive(Debug, Clone)]
pub struct Nft<'a> {
    pub bin: PathBuf,
    env: Option<Vec<(std::ffi::OsString, std::ffi::OsString)>>,
    namespaces: Option<&'a Namespaces>,
}

impl<'a> Nft<'a> {
    /// Find `nft` on PATH (absolute entries only).
    pub fn locate() -> Result<Nft<'a>> {
        Ok(Nft::at(tools::require("nft", tools::NFT_HINT)?))
    }

    /// An `Nft` for an explicit binary.
    pub fn at(bin: PathBuf) -> Nft<'a> {
        Nft { bin, env: None, namespaces: None }
    }

    /// Run nft with exactly this environment (the hook's sanitised one).
    pub fn with_env(mut self, env: Vec<(std::ffi::OsString, std::ffi::OsString)>) -> Self {
        self.env = Some(env);
        self
    }

    /// Run nft inside a container's namespaces.
    pub fn in_namespaces(mut self, ns: &'a Namespaces) -> Self {
        self.namespaces = Some(ns);
        self
    }

    fn cmd(&self) -> Cmd<'_> {
        let mut c = Cmd::new(&self.bin, TIMEOUT);
        if let Some(env) = &self.env {
            c = c.clean_env(env.clone());
        }
        if let Some(ns) = self.namespaces {
            c = c.in_namespaces(ns);
        }
        c
    }

    /// Run with `args`; a non-zero exit is a classified [`NftError::Refused`].
    fn query(&self, args: Vec<String>) -> Result<Output> {
        Ok(self.cmd().args(args).run_ok()?)
    }

    /// Apply a script as one transaction (`nft -f -`).
    pub fn apply(&self, script: &str) -> Result<()> {
        self.cmd().args(["-f", "-"]).stdin(script.as_bytes()).run_ok()?;
        Ok(())
    }

    /// The elements of a timeout set with the seconds each has left (`None`: no expiry);
    /// empty when the set is missing.
    pub fn timed_elements(&self, set: SetId) -> Result<Vec<(IpNet, Option<u64>)>> {
        match self.query(script::list_set_args(set)) {
            Ok(out) => Ok(script::listed_timed_elements(&out.stdout)),
            Err(e) if e.refusal().is_some() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The elements of the port-scoped timeout set `set` with the whole seconds each has left.
    pub fn timed_scoped(&self, set: SetId) -> Result<Vec<(terok_shield_ruleset::Scoped, u64)>> {
        match self.query(script::list_set_args(set)) {
            Ok(out) => Ok(script::listed_timed_scoped(&out.stdout)),
            Err(e) if e.refusal().is_some() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Carry port-scoped learned elements over into `set`, each with the time it had left.
    pub fn add_timed_scoped(&self, set: SetId, elements: &[(terok_shield_ruleset::Scoped, u64)]) -> Result<()> {
        for chunk in elements.chunks(BATCH_NETWORKS) {
            self.apply(&script::add_timed_scoped(set, chunk))?;
        }
        Ok(())
    }

    /// Carry learned elements over into `set`: each with the time it had left, or the set's
    /// default timeout when it had none.
    pub fn add_learned(&self, set: SetId, elements: &[(IpNet, Option<u64>)]) -> Result<()> {
        let (timed, plain): (Vec<_>, Vec<_>) = elements.iter().partition(|(_, t)| t.is_some());
        let timed: Vec<(IpNet, u64)> = timed.into_iter().filter_map(|(e, t)| Some((e, t?))).collect();
        for chunk in timed.chunks(BATCH_ADDRESSES) {
            self.apply(&script::add_timed_elements(set, chunk))?;
        }
        let plain: Vec<IpNet> = plain.into_iter().map(|(e, _)| e).collect();
        self.add_elements(set, &plain)
    }

    /// Add `elements` to `set` (nft, bounded batches).
    pub fn add_elements(&self, set: SetId, elements: &[IpNet]) -> Result<()> {
        let batch = if set.kind() == SetKind::Net { BATCH_NETWORKS } else { BATCH_ADDRESSES };
        for chunk in elements.chunks(batch) {
            self.add_adaptive(set, chunk)?;
        }
        Ok(())
    }

    /// True when `element` is in `set` of our table (`nft get element`); false also when
    /// the set (or the table) is missing.
    pub fn has_element(&self, set: SetId, element: IpNet) -> Result<bool> {
        match self.query(script::get_element_args(set, element)) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.refusal(), Some(Refusal::NoSuchObject | Refusal::NoSuchElement)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `nft list table inet terok_shield`; empty when the table does not exist.
    pub fn list_table(&self) -> Result<String> {
        match self.query(script::list_table_args()) {
            Ok(out) => Ok(out.stdout),
            Err(e) if e.refusal() == Some(Refusal::NoSuchObject) => Ok(String::new()),
            Err(e) => Err(e),
        }
    }

    /// Replace the table with `table` (one transaction), verify it, then add the seeds.
    ///
    /// The table is listed and verified right after its own load, while its sets are empty:
    /// once a set holds many elements every nft run that touches the table costs time in
    /// proportion (nft fetches the whole set), and adding elements cannot change the
    /// posture. In the hook (no namespaces to enter) every element goes straight to the
    /// kernel over netlink ([`super::nftnl`], acknowledged message by message): addresses,
    /// networks as intervals, port-scoped elements. From the CLI, through nft in bounded
    /// batches, halved and retried on "Message too long" (inside a user namespace nft cannot
    /// enlarge its netlink buffer). Until the last batch is in, the table denies by default: a failure
    /// leaves a closed firewall.
    pub fn load(&self, table: &str, seeds: &Seeds, posture: Posture) -> Result<String> {
        self.apply(&script::replace_table(table))?;
        self.verify_and_seed(seeds, posture)
    }

    /// Like [`Nft::load`], into a namespace that should not have the table yet (the hook's
    /// new container): created, which is cheaper than replaced; replaced if it is there.
    pub fn load_fresh(&self, table: &str, seeds: &Seeds, posture: Posture) -> Result<String> {
        match self.apply(&script::create_table(table)) {
            Err(e) if e.refusal() == Some(Refusal::Exists) => self.apply(&script::replace_table(table))?,
            other => other?,
        }
        self.verify_and_seed(seeds, posture)
    }

    fn verify_and_seed(&self, seeds: &Seeds, posture: Posture) -> Result<String> {
        let listing = self.list_table()?;
        if let Err(e) = verify(posture, &listing) {
            // What loaded is not what we meant: leave nothing open behind us.
            let quarantine = render_table(Posture::Quarantine, &NetFacts::preview());
            let _ = self.apply(&script::replace_table(&quarantine));
            return Err(NftError::Unverified(e));
        }
        let sets: Vec<(SetId, Vec<IpNet>)> = set_elements(seeds).into_iter().filter(|(_, e)| !e.is_empty()).collect();
        let mut netlink = None;
        for (set, elements) in &sets {
            if self.namespaces.is_some() {
                // From outside the namespaces (the CLI): through nft, in bounded batches.
                self.add_elements(*set, elements)?;
                continue;
            }
            // In the container's netns (the hook): straight to the kernel.
            let loader = match &mut netlink {
                Some(l) => l,
                None => netlink.insert(super::nftnl::Loader::open()?),
            };
            if set.kind() == SetKind::Net {
                loader.add_networks(*set, elements)?;
            } else {
                let addresses: Vec<std::net::IpAddr> = elements.iter().map(IpNet::addr).collect();
                loader.add(*set, &addresses)?;
            }
        }
        let load = port_load(seeds);
        if self.namespaces.is_some() {
            for stmt in port_statements(&load, None, BATCH_NETWORKS, BATCH_NETWORKS) {
                self.apply(&stmt)?;
            }
            return Ok(listing);
        }
        if load.maps.is_empty() && load.sets.iter().all(|(_, e)| e.is_empty()) {
            return Ok(listing);
        }
        let loader = match &mut netlink {
            Some(l) => l,
            None => netlink.insert(super::nftnl::Loader::open()?),
        };
        for (tier, map) in &load.maps {
            for (set, ranges) in map_elements(*tier, map).filter(|(_, r)| !r.is_empty()) {
                if set.kind() == SetKind::PortHostMap {
                    loader.add_mapped_hosts(set, ranges)?;
                } else {
                    loader.add_mapped(set, ranges)?;
                }
            }
            if let Some(set) = SetId::scopes(*tier) {
                loader.add_scopes(set, &map.scopes)?;
            }
        }
        for (set, elements) in load.sets.iter().filter(|(_, e)| !e.is_empty()) {
            loader.add_scoped(*set, elements, None)?;
        }
        Ok(listing)
    }

    /// Add `elements` in one transaction, or in halves when the batch is too large.
    fn add_adaptive(&self, set: SetId, elements: &[IpNet]) -> Result<()> {
        match self.apply(&script::add_elements(set, elements)) {
            Err(e) if e.refusal() == Some(Refusal::TooLong) && elements.len() > 1 => {
                let (a, b) = elements.split_at(elements.len() / 2);
                self.add_adaptive(set, a)?;
                self.add_adaptive(set, b)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_read_once() {
        assert_eq!(Refusal::of("Error: Could not process rule: No such file or directory"), Refusal::NoSuchObject);
        assert_eq!(Refusal::of("Error: element does not exist"), Refusal::NoSuchElement);
        assert_eq!(Refusal::of("netlink: Error: Could not process rule: Message too long"), Refusal::TooLong);
        assert_eq!(Refusal::of("Error: Could not process rule: File exists"), Refusal::Exists);
        assert_eq!(Refusal::of("Error: syntax error"), Refusal::Other);
        let e =
            NftError::from(ExecError::Failed { cmd: "nft".into(), rc: 1, stderr: "No such file or directory".into() });
        assert_eq!(e.refusal(), Some(Refusal::NoSuchObject));
        assert_eq!(e.to_string(), "'nft' failed (rc=1): No such file or directory");
        let e = NftError::from(ExecError::Failed { cmd: "nft".into(), rc: 127, stderr: "not found".into() });
        assert_eq!(e.refusal(), None);
        let e = NftError::from(ExecError::Timeout { cmd: "nft".into(), secs: 30 });
        assert_eq!(e.refusal(), None);
    }
}
