//! Static resolution with caches (dns.md §6): a per-container address file, fresh for an
//! hour unless a policy file is newer, and a host cache shared by containers with the same
//! entry list. Domains are looked up 16 at a time, 2 s each.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use terok_shield_policy::{IpNet, Target};

use crate::error::Result;
use crate::fsutil;
use crate::report::{Progress, Report, Reporter};

/// Lookups in flight at once.
pub const PARALLEL: usize = 16;
/// How long a cache stays fresh.
pub const MAX_AGE: Duration = Duration::from_secs(3600);

/// One static resolution.
pub struct Request<'a> {
    /// Targets to resolve (addresses and networks are kept as they are).
    pub entries: &'a [&'a Target],
    /// The container's cache (`resolved.ips` and the like).
    pub cache_file: &'a Path,
    /// The newest policy file: a cache older than this is stale.
    pub source_mtime: SystemTime,
    /// Host cache directory (created 0700).
    pub host_cache_dir: &'a Path,
    /// `resolve --force`: ignore both caches.
    pub force: bool,
    /// What the progress lines call the names ("allowlist", "denylist").
    pub what: &'a str,
}

/// Many names at once; `None` for a name left unanswered.
pub type Bulk = dyn Fn(&[&str]) -> Vec<Option<Vec<IpAddr>>> + Sync;

/// One name, one by one; warnings go to the reporter.
pub type One<'a> = dyn Fn(&str, Reporter) -> Vec<IpAddr> + Sync + 'a;

/// How names are looked up: many at once, then one by one what that left.
pub struct Lookup<'a> {
    pub bulk: Option<&'a Bulk>,
    pub one: &'a One<'a>,
}

/// The host's resolver: its nameserver directly, then dig/drill/getent.
pub const HOST: Lookup<'static> =
    Lookup { bulk: Some(&crate::dns::resolve::resolve_all), one: &crate::dns::resolve::with_tools };

/// Resolve `req.entries`: the container's cache when fresh, else the host cache when fresh,
/// else the resolver. Returns the addresses in order (literals first), unfiltered; the
/// caller writes what it keeps.
pub fn resolve(req: &Request, lookup: &Lookup, report: Reporter) -> Result<Vec<IpNet>> {
    let fresh = |p: &Path, min_mtime: SystemTime| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= min_mtime && SystemTime::now().duration_since(m).unwrap_or_default() < MAX_AGE)
    };
    if !req.force && fresh(req.cache_file, req.source_mtime) {
        return read(req.cache_file);
    }
    let host_file = host_cache_file(req.host_cache_dir, req.entries);
    if !req.force && fresh(&host_file, SystemTime::UNIX_EPOCH) {
        return read(&host_file);
    }
    let literals: Vec<IpNet> = req.entries.iter().filter_map(|t| t.as_net()).collect();
    let domains: Vec<&str> = req.entries.iter().filter_map(|t| t.as_domain()).collect();
    let resolved = resolve_domains(&domains, req.what, lookup, report);
    let mut out = literals;
    out.extend(resolved.into_iter().flat_map(|(_, a)| a).map(IpNet::host));
    let mut seen = std::collections::HashSet::new();
    out.retain(|n| seen.insert(*n));
    if out.len() > req.entries.iter().filter(|t| t.is_ip()).count() || domains.is_empty() {
        // An outage must not poison the other containers' cache.
        fsutil::mkdir_700(req.host_cache_dir)?;
        write(&host_file, &out)?;
    }
    Ok(out)
}

/// Resolve each domain (16 at a time), reporting progress and each domain with no address.
/// Returns `(domain, addresses)` in input order.
pub fn resolve_domains(domains: &[&str], what: &str, lookup: &Lookup, report: Reporter) -> Vec<(String, Vec<IpAddr>)> {
    if domains.is_empty() {
        return Vec::new();
    }
    let started = Instant::now();
    let n = domains.len();
    let max_secs = (n.div_ceil(PARALLEL) * 4) as u64;
    report(Report::Progress(Progress::Resolving { total: n, what: what.to_string(), max_secs }));
    let first: Vec<Option<Vec<IpAddr>>> = match lookup.bulk {
        Some(bulk) => bulk(domains).into_iter().map(|r| r.filter(|a| !a.is_empty())).collect(),
        None => vec![None; n],
    };
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(first.iter().filter(|r| r.is_some()).count());
    let results: Mutex<Vec<Option<Vec<IpAddr>>>> = Mutex::new(first);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(n) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = domains.get(i) else { break };
                if results.lock().is_ok_and(|r| r[i].is_some()) {
                    continue;
                }
                let got = (lookup.one)(d, report);
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(got);
                }
                let k = done.fetch_add(1, Ordering::Relaxed) + 1;
                report(Report::Progress(Progress::Looked { done: k, total: n }));
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    let out: Vec<(String, Vec<IpAddr>)> =
        domains.iter().zip(results).map(|(d, r)| (d.to_string(), r.unwrap_or_default())).collect();
    for (d, a) in &out {
        if a.is_empty() {
            report(Report::Note(format!("No address for {}.", terok_shield_policy::sanitize::sanitize_wire(d, 253))));
        }
    }
    let addresses = out.iter().map(|(_, a)| a.len()).sum();
    report(Report::Progress(Progress::Resolved { addresses, elapsed: started.elapsed() }));
    out
}

/// `<dir>/<first 16 hex of sha256(entries joined by newlines)>.resolved`.
pub fn host_cache_file(dir: &Path, entries: &[&Target]) -> PathBuf {
    let joined: Vec<String> = entries.iter().map(|t| t.to_string()).collect();
    let digest = Sha256::digest(joined.join("\n").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    dir.join(format!("{hex}.resolved"))
}

/// Write an address cache atomically: one per line, trailing newline; empty list, empty file.
pub fn write(path: &Path, addrs: &[IpNet]) -> Result<()> {
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    fsutil::write_atomic(path, text.as_bytes(), 0o600)
}

fn read(path: &Path) -> Result<Vec<IpNet>> {
    crate::bundle::layout::read_addresses(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(s: &[&str]) -> Vec<Target> {
        s.iter().map(|t| Target::parse(t).unwrap_or_else(|e| panic!("{e}"))).collect()
    }

    /// A request for `entries` with these caches, nothing stale, not forced.
    fn request<'a>(entries: &'a [&'a Target], cache: &'a Path, host: &'a Path) -> Request<'a> {
        Request {
            entries,
            cache_file: cache,
            source_mtime: SystemTime::UNIX_EPOCH,
            host_cache_dir: host,
            force: false,
            what: "allowlist",
        }
    }

    #[test]
    fn caches_are_used_while_fresh_and_bypassed_when_forced() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let t = targets(&["198.51.100.1", "a.example.com", "b.example.com"]);
        let refs: Vec<&Target> = t.iter().collect();
        let calls = AtomicUsize::new(0);
        let lookup = |d: &str, _: Reporter| {
            calls.fetch_add(1, Ordering::SeqCst);
            if d == "a.example.com" {
                vec!["198.51.100.10".parse().unwrap_or_else(|_| unreachable!())]
            } else {
                vec!["2001:db8::1".parse().unwrap_or_else(|_| unreachable!())]
            }
        };
        let (cache, host) = (dir.path().join("resolved.ips"), dir.path().join("dns-cache"));
        let req = request(&refs, &cache, &host);
        let lookup = Lookup { bulk: None, one: &lookup };
        let got: Vec<String> =
            resolve(&req, &lookup, &crate::report::quiet).unwrap_or_default().iter().map(IpNet::to_string).collect();
        assert_eq!(got, ["198.51.100.1", "198.51.100.10", "2001:db8::1"]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The host cache serves a second container with the same entries.
        assert!(host_cache_file(&host, &refs).exists());
        assert_eq!(resolve(&req, &lookup, &crate::report::quiet).map(|v| v.len()).ok(), Some(3));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // A fresh container cache is used as it is.
        write(&cache, &["198.51.100.99".parse().unwrap_or_else(|_| unreachable!())]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resolve(&req, &lookup, &crate::report::quiet).map(|v| v.len()).ok(), Some(1));
        // A newer policy file makes it stale (the host cache answers again).
        let newer = Request { source_mtime: SystemTime::now() + Duration::from_secs(5), ..req };
        assert_eq!(resolve(&newer, &lookup, &crate::report::quiet).map(|v| v.len()).ok(), Some(3));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let forced = Request { force: true, ..newer };
        assert_eq!(resolve(&forced, &lookup, &crate::report::quiet).map(|v| v.len()).ok(), Some(3));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn an_outage_does_not_poison_the_host_cache() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let t = targets(&["down.example.com"]);
        let refs: Vec<&Target> = t.iter().collect();
        let (cache, host) = (dir.path().join("resolved.ips"), dir.path().join("dns-cache"));
        let req = request(&refs, &cache, &host);
        let nothing = Lookup { bulk: None, one: &|_, _| Vec::new() };
        assert_eq!(resolve(&req, &nothing, &crate::report::quiet).map(|v| v.len()).ok(), Some(0));
        assert!(!host_cache_file(&host, &refs).exists());
    }

    #[test]
    fn lookups_run_sixteen_at_a_time() {
        let names: Vec<String> = (0..48).map(|i| format!("n{i}.example.com")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (now, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let started = Instant::now();
        let one = |_: &str, _: Reporter| {
            let k = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(k, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            now.fetch_sub(1, Ordering::SeqCst);
            vec!["198.51.100.1".parse().unwrap_or_else(|_| unreachable!())]
        };
        // The bulk lookup answers every other name; the rest go one by one.
        let bulk = |d: &[&str]| -> Vec<Option<Vec<IpAddr>>> {
            (0..d.len())
                .map(|i| (i % 2 == 0).then(|| vec!["198.51.100.2".parse().unwrap_or_else(|_| unreachable!())]))
                .collect()
        };
        let out = resolve_domains(&refs, "allowlist", &Lookup { bulk: None, one: &one }, &crate::report::quiet);
        assert_eq!(out.len(), 48);
        assert_eq!(out[47].0, "n47.example.com");
        assert_eq!(peak.load(Ordering::SeqCst), PARALLEL);
        assert!(started.elapsed() < Duration::from_secs(4));
        let mixed =
            resolve_domains(&refs, "allowlist", &Lookup { bulk: Some(&bulk), one: &one }, &crate::report::quiet);
        assert_eq!(mixed[0].1[0].to_string(), "198.51.100.2");
        assert_eq!(mixed[1].1[0].to_string(), "198.51.100.1");
    }
}
