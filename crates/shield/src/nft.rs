//! nft: load scripts, list our table, load a ruleset in bounded batches and verify it.
//!
//! Everything runs in the caller's current network namespace (see [`crate::netns`]).

use std::path::PathBuf;
use std::time::Duration;

use terok_shield_policy::IpNet;
use terok_shield_ruleset::seeds::set_elements;
use terok_shield_ruleset::verify::verify;
use terok_shield_ruleset::{render_table, NetFacts, Posture, Seeds};

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
pub struct Nft<'a> {
    pub bin: PathBuf,
    env: Option<Vec<(std::ffi::OsString, std::ffi::OsString)>>,
    namespaces: Option<&'a crate::netns::Namespaces>,
}

impl<'a> Nft<'a> {
    /// Find `nft` on PATH (absolute entries only).
    pub fn locate() -> Result<Nft<'a>> {
        let bin = tools::find("nft").ok_or(Error::ToolMissing { name: "nft", hint: tools::NFT_HINT })?;
        Ok(Nft { bin, env: None, namespaces: None })
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
    pub fn in_namespaces(mut self, ns: &'a crate::netns::Namespaces) -> Self {
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

    /// Apply a script as one transaction (`nft -f -`).
    pub fn apply(&self, script: &str) -> Result<()> {
        self.cmd().args(["-f", "-"]).stdin(script.as_bytes()).run_ok().map(|_| ())
    }

    /// The elements of one of our sets (`nft list set`); empty when the set is missing.
    pub fn set_elements(&self, set: &str) -> Result<Vec<IpNet>> {
        let out = self.cmd().args(["list", "set", "inet", "terok_shield", set]).run()?;
        if out.status != 0 {
            return Ok(Vec::new());
        }
        let Some(body) = out.stdout.split("elements = {").nth(1).and_then(|b| b.split('}').next()) else {
            return Ok(Vec::new());
        };
        Ok(body.split(',').filter_map(|atom| atom.split_whitespace().next()).filter_map(|t| t.parse().ok()).collect())
    }

    /// Add `elements` to `set` (nft, bounded batches); for carrying learned elements over.
    pub fn add_elements(&self, set: &str, elements: &[IpNet]) -> Result<()> {
        for chunk in elements.chunks(BATCH_ADDRESSES) {
            self.add_adaptive(set, chunk)?;
        }
        Ok(())
    }

    /// True when `element` is in `set` of our table (`nft get element`).
    pub fn has_element(&self, set: &str, element: &str) -> Result<bool> {
        let out =
            self.cmd().args(["get", "element", "inet", "terok_shield", set, &format!("{{ {element} }}")]).run()?;
        match out.status {
            0 => Ok(true),
            _ if out.stderr.contains("No such file or directory") || out.stderr.contains("element does not exist") => {
                Ok(false)
            }
            rc => Err(Error::Exec {
                cmd: format!("nft get element inet terok_shield {set}"),
                rc,
                stderr: crate::exec::one_line(&out.stderr),
            }),
        }
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

    /// Replace the table with `table` (one transaction), verify it, then add the seeds.
    ///
    /// The table is listed and verified right after its own load, while its sets are empty:
    /// once a set holds many elements every nft run that touches the table costs time in
    /// proportion (nft fetches the whole set), and adding elements cannot change the
    /// posture. Single addresses go straight to the kernel over netlink ([`crate::nftnl`],
    /// acknowledged message by message); networks go through nft in bounded batches, halved
    /// and retried on "Message too long" (inside a user namespace nft cannot enlarge its
    /// netlink buffer). Until the last batch is in, the table denies by default: a failure
    /// leaves a closed firewall.
    pub fn load(&self, table: &str, seeds: &Seeds, posture: Posture) -> Result<String> {
        let existing = !self.list_table()?.is_empty();
        let script = if existing { format!("delete table inet terok_shield\n{table}") } else { table.to_string() };
        self.apply(&script)?;
        let listing = self.list_table()?;
        if let Err(e) = verify(posture, &listing) {
            // What loaded is not what we meant: leave nothing open behind us.
            let quarantine = render_table(Posture::Quarantine, &NetFacts::preview());
            let _ = self.apply(&format!("delete table inet terok_shield\n{quarantine}"));
            return Err(Error::Setup(format!("ruleset verification failed: {e}")));
        }
        let sets: Vec<(&str, Vec<IpNet>)> = set_elements(seeds).into_iter().filter(|(_, e)| !e.is_empty()).collect();
        if sets.is_empty() {
            return Ok(listing);
        }
        let mut netlink = None;
        for (set, elements) in &sets {
            if set.contains("_net_") {
                for chunk in elements.chunks(BATCH_NETWORKS) {
                    self.add_adaptive(set, chunk)?;
                }
                continue;
            }
            if self.namespaces.is_some() {
                // From outside the namespaces (the CLI): through nft, in bounded batches.
                for chunk in elements.chunks(BATCH_ADDRESSES) {
                    self.add_adaptive(set, chunk)?;
                }
                continue;
            }
            // Plain sets, in the container's netns (the hook): straight to the kernel.
            let loader = match &mut netlink {
                Some(l) => l,
                None => netlink.insert(crate::nftnl::Loader::open()?),
            };
            let addresses: Vec<std::net::IpAddr> = elements.iter().map(IpNet::addr).collect();
            loader.add(set, &addresses)?;
        }
        Ok(listing)
    }

    /// Add `elements` in one transaction, or in halves when the batch is too large.
    fn add_adaptive(&self, set: &str, elements: &[IpNet]) -> Result<()> {
        match self.apply(&add_statement(set, elements)) {
            Err(e) if too_long(&e) && elements.len() > 1 => {
                let (a, b) = elements.split_at(elements.len() / 2);
                self.add_adaptive(set, a)?;
                self.add_adaptive(set, b)
            }
            other => other,
        }
    }
}

fn too_long(e: &Error) -> bool {
    matches!(e, Error::Exec { stderr, .. } if stderr.contains("Message too long"))
}

fn add_statement(set: &str, elements: &[IpNet]) -> String {
    let mut s = String::with_capacity(elements.len() * 16 + 64);
    s.push_str("add element inet terok_shield ");
    s.push_str(set);
    s.push_str(" { ");
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&e.to_string());
    }
    s.push_str(" }\n");
    s
}
