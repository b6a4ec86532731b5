//! nft: load scripts, list our table, load a ruleset in bounded batches and verify it.
//!
//! Everything runs in the caller's current network namespace (see [`crate::netns`]).

use std::path::PathBuf;
use std::time::Duration;

use terok_shield_ruleset::verify::{set_element_counts, verify};
use terok_shield_ruleset::{render_table, seed_statements, NetFacts, Posture, Seeds};

use crate::error::{Error, Result};
use crate::exec::Cmd;
use crate::tools;

/// Elements per transaction: inside a user namespace nft cannot enlarge its netlink send
/// buffer, so one batch holds only a few thousand elements (plain sets fail between 8 000
/// and 16 000, interval sets between 4 000 and 8 000).
pub const BATCH_ADDRESSES: usize = 4000;
pub const BATCH_NETWORKS: usize = 1000;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The `nft` binary and the environment it runs with.
#[derive(Debug, Clone)]
pub struct Nft {
    pub bin: PathBuf,
    env: Option<Vec<(std::ffi::OsString, std::ffi::OsString)>>,
}

impl Nft {
    /// Find `nft` on PATH (absolute entries only).
    pub fn locate() -> Result<Nft> {
        let bin = tools::find("nft").ok_or(Error::ToolMissing { name: "nft", hint: tools::NFT_HINT })?;
        Ok(Nft { bin, env: None })
    }

    /// An `Nft` for an explicit binary.
    pub fn at(bin: PathBuf) -> Nft {
        Nft { bin, env: None }
    }

    /// Run nft with exactly this environment (the hook's sanitised one).
    pub fn with_env(mut self, env: Vec<(std::ffi::OsString, std::ffi::OsString)>) -> Self {
        self.env = Some(env);
        self
    }

    fn cmd(&self) -> Cmd<'_> {
        let c = Cmd::new(&self.bin, TIMEOUT);
        match &self.env {
            Some(env) => c.clean_env(env.clone()),
            None => c,
        }
    }

    /// Apply a script as one transaction (`nft -f -`).
    pub fn apply(&self, script: &str) -> Result<()> {
        self.cmd().args(["-f", "-"]).stdin(script.as_bytes()).run_ok().map(|_| ())
    }

    /// `nft list table inet terok_shield`; empty when the table does not exist.
    pub fn list_table(&self) -> Result<String> {
        let out = self.cmd().args(["list", "table", "inet", "terok_shield"]).run()?;
        if out.status == 0 {
            return Ok(out.stdout);
        }
        if out.stderr.contains("No such file or directory") {
            return Ok(String::new());
        }
        Err(Error::Exec {
            cmd: "nft list table inet terok_shield".into(),
            rc: out.status,
            stderr: crate::exec::one_line(&out.stderr),
        })
    }

    /// Replace the table with `table` (one transaction), then add `seeds` in bounded
    /// transactions, then list and verify. Until the last batch is in, the table already
    /// denies by default: a failure leaves a closed firewall, never an open one.
    pub fn load(&self, table: &str, seeds: &Seeds, posture: Posture) -> Result<String> {
        let existing = !self.list_table()?.is_empty();
        let script = if existing { format!("delete table inet terok_shield\n{table}") } else { table.to_string() };
        self.apply(&script)?;
        for stmt in seed_statements_batched(seeds) {
            self.apply(&stmt)?;
        }
        let listing = self.list_table()?;
        let checked = verify(posture, &listing)
            .map_err(|e| Error::Setup(format!("ruleset verification failed: {e}")))
            .and_then(|()| check_counts(seeds, &listing));
        if let Err(e) = checked {
            // What loaded is not what we meant: leave nothing open behind us.
            let quarantine = render_table(Posture::Quarantine, &NetFacts::preview());
            let _ = self.apply(&format!("delete table inet terok_shield\n{quarantine}"));
            return Err(e);
        }
        Ok(listing)
    }
}

/// Seed statements sized for one transaction each.
pub fn seed_statements_batched(seeds: &Seeds) -> Vec<String> {
    seed_statements(seeds, BATCH_ADDRESSES, BATCH_NETWORKS)
}

/// Every seeded single address is in its set (networks may be listed merged, so only their
/// presence is checked).
fn check_counts(seeds: &Seeds, listing: &str) -> Result<()> {
    let counts = set_element_counts(listing);
    for (set, want) in terok_shield_ruleset::seeds::expected_counts(seeds) {
        let have = counts.get(set).copied().unwrap_or(0);
        let ok = if set.contains("_net_") { want == 0 || have > 0 } else { have == want };
        if !ok {
            return Err(Error::Setup(format!(
                "ruleset verification failed: set {set} holds {have} elements, expected {want}"
            )));
        }
    }
    Ok(())
}
