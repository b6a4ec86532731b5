//! DNS on every mode: live domains, the dnsmasq and static modes, krun, orphaned dnsmasq,
//! getent, an IPv6 upstream.

use super::harness::*;

fn live_domains(who: Who) {
    let Some((h, name)) = start_shielded(who, "dom", &[ALLOWED_V4], &["sleep", "600"], false, Some(DNSMASQ_LIVE))
    else {
        return;
    };
    let shield = |args: &[&str]| h.shield_with_test_dns(args);
    let out = shield(&["allow", &name, "unlisted.shield.test"]);
    assert_eq!(
        out.stdout,
        format!("Allowed unlisted.shield.test -> {UNLISTED_V4}, {UNLISTED_V6} for {name}\n"),
        "{}",
        out.stderr
    );
    let out = shield(&["deny", &name, "allowed.shield.test"]);
    assert_eq!(
        out.stdout,
        format!("Denied allowed.shield.test ({ALLOWED_V4}, {ALLOWED_V6}) for {name}\n"),
        "{}",
        out.stderr
    );
    h.probe(&name, &format!("{who:?} after domain allow/deny"), &[(ALLOWED_V4, false), (UNLISTED_V4, true)]);
    let live = std::fs::read_to_string(h.state_dir(&name).join("policy/live")).unwrap_or_default();
    assert_eq!(
        live,
        format!(
            "+{UNLISTED_V4}\n+{UNLISTED_V6}\n+unlisted.shield.test\n-{ALLOWED_V4}\n-{ALLOWED_V6}\n-allowed.shield.test\n"
        )
    );
    let before = bundle_snapshot(&h.state_dir(&name));
    let out = shield(&["allow", &name, "nothing.shield.test"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, format!("Error: No IPs allowed for {name}\n").as_str()));
    assert!(before == bundle_snapshot(&h.state_dir(&name)), "a refused domain changed the bundle");
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_live_domains() {
    live_domains(Who::Root);
}

#[test]
fn rootless_live_domains() {
    live_domains(Who::User);
}

/// Names on the live DNS tier, through the container's own dnsmasq and a test DNS server.
fn dns_names(who: Who) {
    let rot = format!("rot-{}-{who:?}.shield.test", std::process::id()).to_lowercase();
    test_name(&rot, UNLISTED_V4);
    let allow = ["allowed.shield.test", "private.shield.test", rot.as_str()];
    let Some((h, name)) = start_shielded(who, "dns", &allow, &["sleep", "600"], true, Some(DNSMASQ_LIVE)) else {
        return;
    };
    let tier = std::fs::read_to_string(h.state_dir(&name).join("dns.tier")).unwrap_or_default();
    if tier.trim() != "dnsmasq-live" {
        // dnsmasq-base on Debian 12 is built with nftset; anything else is a broken setup.
        panic!("{who:?}: DNS tier {tier:?}, want dnsmasq-live");
    }
    h.probe(
        &name,
        &format!("{who:?} by name"),
        &[
            ("allowed.shield.test", true),
            ("www.allowed.shield.test", true),
            ("unlisted.shield.test", false),
            ("private.shield.test", false),
            (PRIVATE_V4, false),
        ],
    );
    // An AAAA answer fills the IPv6 learned set: the v6 address answers once looked up.
    let six = h.podman(&["exec", &name, "nslookup", "-type=AAAA", "allowed.shield.test"]);
    assert!(six.stdout.contains(ALLOWED_V6), "{who:?}: {}", six.stdout);
    h.probe(&name, &format!("{who:?} AAAA"), &[(ALLOWED_V6, true), (UNLISTED_V6, false)]);
    // The guarded answer never reached a set, and the container was told NXDOMAIN.
    let rules = h.shield(&["rules", &name]).stdout;
    assert!(!rules.contains(PRIVATE_V4), "{who:?}: a private answer reached a set: {rules}");
    let lookup = h.podman(&["exec", &name, "nslookup", "private.shield.test"]);
    assert!(lookup.stdout.contains("NXDOMAIN"), "{who:?}: {}", lookup.stdout);
    // ... and the reader audited the refusal.
    let audited = within(std::time::Duration::from_secs(3), || {
        std::fs::read_to_string(h.state_dir(&name).join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"action\":\"dns_rebind\"") && l.contains("\"domain\":\"private.shield.test\""))
    });
    assert!(audited, "{who:?}: no dns_rebind row for private.shield.test");
    // A name that moves to another address stays reachable.
    h.probe(&name, &format!("{who:?} rotating, first address"), &[(rot.as_str(), true)]);
    test_name(&rot, DENIED_V4);
    h.probe(&name, &format!("{who:?} rotating, second address"), &[(rot.as_str(), true)]);
    // A new name becomes reachable without a restart.
    let out = h.shield_with_test_dns(&["allow", &name, "unlisted.shield.test"]);
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    h.probe(
        &name,
        &format!("{who:?} after allow"),
        &[("unlisted.shield.test", true), ("www.unlisted.shield.test", true)],
    );
    // A wildcard on the live tier: names under it become reachable as they are answered.
    let wild = format!("w{}-{who:?}.shield.test", std::process::id()).to_lowercase();
    let sub = format!("sub.{wild}");
    test_name(&sub, UNLISTED_V4);
    let out = h.shield_with_test_dns(&["allow", &name, &format!("*.{wild}")]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("Allowed *.{wild} -> each address dnsmasq answers for {name}\n").as_str()),
        "{who:?}: {}",
        out.stderr
    );
    h.probe(&name, &format!("{who:?} wildcard"), &[(sub.as_str(), true)]);
    let _ = std::fs::remove_file(format!("/run/tshield-hosts/dns-hosts/{sub}"));
    // A deny by name also forgets the addresses dnsmasq learned for it (issue 14.3): an
    // address the rotating name gave earlier, no longer what the host resolves, stops
    // answering; an allowed name is learned again at its next lookup.
    // (Its first address was resolved at prepare and so is authored; the second, DENIED_V4,
    // is only learned. At the deny the host resolves a third one, which the deny names.)
    h.probe(&name, &format!("{who:?} learned second address"), &[(DENIED_V4, true)]);
    test_name(&rot, "198.51.100.53");
    let out = h.shield_with_test_dns(&["deny", &name, &rot]);
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    assert!(out.stderr.contains("every address learned from DNS answers was forgotten"), "{who:?}: {}", out.stderr);
    h.probe(&name, &format!("{who:?} after deny by name"), &[(DENIED_V4, false), ("allowed.shield.test", true)]);
    // A denied domain is sinkholed: the container's resolver answers NXDOMAIN.
    let out = h.shield_with_test_dns(&["deny", &name, "denied.shield.test"]);
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    let lookup = h.podman(&["exec", &name, "nslookup", "denied.shield.test"]);
    assert!(lookup.stdout.contains("NXDOMAIN"), "{who:?}: {}", lookup.stdout);
    h.probe(&name, &format!("{who:?} after deny"), &[("allowed.shield.test", true), (DENIED_V4, false)]);
    let conf = std::fs::read_to_string(h.state_dir(&name).join("dnsmasq.conf")).unwrap_or_default();
    assert!(conf.contains("local=/denied.shield.test/\n"), "{conf}");
    assert!(conf.contains("nftset=/unlisted.shield.test/"), "{conf}");
    // poststop reaps dnsmasq.
    let pid = std::fs::read_to_string(h.state_dir(&name).join("dnsmasq.pid")).unwrap_or_default();
    assert!(std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(), "{who:?}: dnsmasq is not running");
    h.podman(&["rm", "-f", &name]);
    // podman runs poststop from its cleanup process, which may finish after `rm` returns.
    let gone = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
    });
    assert!(gone, "{who:?}: dnsmasq outlived its container");
    let _ = std::fs::remove_file(format!("/run/tshield-hosts/dns-hosts/{rot}"));
}

/// A bundle deleted while its container runs: poststop still stops the container's dnsmasq.
fn orphaned_dnsmasq(who: Who) {
    let Some((h, name)) =
        start_shielded(who, "orphan", &["allowed.shield.test"], &["sleep", "600"], true, Some(DNSMASQ_LIVE))
    else {
        return;
    };
    let read = |f: &str| std::fs::read_to_string(h.state_dir(&name).join(f)).unwrap_or_default();
    let procs: Vec<(&str, String)> = [("dnsmasq", read("dnsmasq.pid")), ("reader", read("reader.pid"))]
        .into_iter()
        .map(|(what, pid)| (what, format!("/proc/{}", pid.trim())))
        .collect();
    for (what, dir) in &procs {
        assert!(std::path::Path::new(dir).exists() && dir != "/proc/", "{who:?}: no {what}");
    }
    h.sh(&format!("rm -rf {}", h.state_dir(&name).display()));
    let out = h.podman(&["rm", "-f", &name]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (what, dir) in &procs {
        let gone = within(std::time::Duration::from_secs(5), || !std::path::Path::new(dir).exists());
        assert!(gone, "{who:?}: {what} outlived its container and its bundle");
    }
}

#[test]
fn rootful_poststop_reaps_dnsmasq_of_a_deleted_bundle() {
    orphaned_dnsmasq(Who::Root);
}

#[test]
fn rootless_poststop_reaps_dnsmasq_of_a_deleted_bundle() {
    orphaned_dnsmasq(Who::User);
}

/// `run … -- --runtime …/krun`: dnsmasq listens on 169.254.1.3 (added to `lo` by the hook),
/// the container's resolv.conf names it, and a live `allow` keeps it there. The "krun" here
/// is a wrapper around runc: what is under test is the shield's side of the runtime.
#[test]
fn rootful_krun_runtime_serves_dns_on_its_own_address() {
    let Some(e) = env() else { return };
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    h.file("bin/krun", "#!/bin/sh\nexec runc \"$@\"\n", 0o755);
    h.file("config/config.yml", DNSMASQ_LIVE, 0o600);
    h.profile("lab", "+allowed.shield.test\n");
    let name = format!("tsh-krun-{}", std::process::id());
    let krun = h.dir.join("bin/krun").display().to_string();
    let args = ["run", &name, "--profiles", "lab", "--", "-d", "--runtime", &krun, &e.image, "sleep", "600"];
    let out = h.shield_with_test_dns(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let read = |f: &str| std::fs::read_to_string(h.state_dir(&name).join(f)).unwrap_or_default();
    assert_eq!(read("resolv.conf"), "nameserver 169.254.1.3\noptions ndots:0\n");
    let lo = h.podman(&["exec", &name, "ip", "addr", "show", "lo"]).stdout;
    assert!(lo.contains("inet 169.254.1.3/32"), "{lo}");
    h.probe(&name, "krun", &[("allowed.shield.test", true), ("unlisted.shield.test", false)]);
    let out = h.shield_with_test_dns(&["allow", &name, "unlisted.shield.test"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(read("dnsmasq.conf").contains("listen-address=169.254.1.3\n"), "{}", read("dnsmasq.conf"));
    h.probe(&name, "krun after allow", &[("unlisted.shield.test", true)]);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_names_on_the_live_dns_tier() {
    dns_names(Who::Root);
}

#[test]
fn rootless_names_on_the_live_dns_tier() {
    dns_names(Who::User);
}

/// A dnsmasq whose `--version` lacks nftset: the dnsmasq-static tier.
const NO_NFTSET_DNSMASQ: &str = "#!/bin/bash\nif [ \"$1\" = --version ]; then /usr/sbin/dnsmasq --version | sed 's/ nftset/ no-nftset/'; exit; fi\nexec -a \"$0\" /usr/sbin/dnsmasq \"$@\"\n";

/// A dnsmasq that AppArmor keeps out of the state dir (its probe fails with "Permission
/// denied"): the lookup tier.
const CONFINED_DNSMASQ: &str = "#!/bin/bash\ncase \"$*\" in *--test*) echo 'dnsmasq: cannot read probe: Permission denied' >&2; exit 1;; esac\nexec -a \"$0\" /usr/sbin/dnsmasq \"$@\"\n";

/// The static tiers: names resolved at launch (through the test DNS server), the rebind
/// guard over those answers, the tier hints, `resolve`, and the wildcard refusal.
fn static_tiers(who: Who, tier: &str, wrapper: &str) {
    let Some(e) = env() else { return };
    ensure_setup(who);
    let h = Home::new(who);
    h.file("bin/dnsmasq", wrapper, 0o755);
    let config = format!("dnsmasq_path: {}\ndefault_profiles: [lab]\n{AUTO_TIER}", h.dir.join("bin/dnsmasq").display());
    h.file("config/config.yml", &config, 0o600);
    h.profile("lab", "+allowed.shield.test\n+private.shield.test\n");
    let name = format!("tsh-{tier}-{}-{who:?}", std::process::id()).to_lowercase();
    let out = h.shield_with_test_dns(&["run", &name, "--", "-d", &e.image, "sleep", "600"]);
    assert_eq!(out.code, 0, "{who:?} {tier}: {}", out.stderr);
    assert!(out.stderr.contains(&format!("DNS tier {tier}: ")), "{who:?}: no tier hint: {}", out.stderr);
    assert!(out.stderr.contains(&format!("Refused {PRIVATE_V4}: ")), "{who:?}: {}", out.stderr);
    let dir = h.state_dir(&name);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert_eq!(read("dns.tier"), format!("{tier}\n"));
    assert_eq!(read("resolved.ips"), format!("{ALLOWED_V4}\n{ALLOWED_V6}\n"), "{who:?} {tier}");
    let audit = read("audit.jsonl");
    assert!(audit.contains(&format!("\"action\":\"dns_rebind\",\"dest\":\"{PRIVATE_V4}\"")), "{audit}");
    h.probe(
        &name,
        &format!("{who:?} {tier}"),
        &[("allowed.shield.test", true), ("unlisted.shield.test", false), ("private.shield.test", false)],
    );
    if tier == "lookup" {
        // watch works without dnsmasq: it says so, and NFLOG and audit events still come.
        let e = env().unwrap_or_else(|| unreachable!());
        let watch = h
            .cmd(&e.bin.join("terok-shield").display().to_string(), &["watch", &name])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(std::time::Duration::from_millis(1500));
        h.podman(&["exec", &name, "sh", "-c", &format!("nc -w 1 {UNLISTED_V4} 80 </dev/null; true")]);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        terminate(&watch, nix::sys::signal::Signal::SIGTERM);
        let done = watch.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let (stdout, stderr) = (String::from_utf8_lossy(&done.stdout), String::from_utf8_lossy(&done.stderr));
        assert!(done.status.success(), "{who:?}: {stderr}");
        assert!(stderr.contains("DNS tier lookup: events carry IP addresses only."), "{stderr}");
        assert!(stdout.contains("\"source\":\"nflog\",\"action\":\"queued_connection\""), "{stdout}");
        assert!(stdout.contains(&format!("\"dest\":\"{UNLISTED_V4}\"")), "{stdout}");
        assert!(out.stderr.contains("AppArmor keeps"), "{who:?}: {}", out.stderr);
        assert!(audit.contains("blocked by AppArmor"), "{audit}");
        assert!(!dir.join("dnsmasq.conf").exists(), "{who:?}: the lookup tier runs no dnsmasq");
        assert!(!read("resolv.conf").contains("127.0.0.1"), "{}", read("resolv.conf"));
    } else {
        // dnsmasq serves and sinkholes on the static tier too.
        assert_eq!(read("resolv.conf"), "nameserver 127.0.0.1\noptions ndots:0\n");
        assert!(!read("dnsmasq.conf").contains("nftset"), "{}", read("dnsmasq.conf"));
        let out = h.shield_with_test_dns(&["deny", &name, "denied.shield.test"]);
        assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
        let lookup = h.podman(&["exec", &name, "nslookup", "denied.shield.test"]);
        assert!(lookup.stdout.contains("NXDOMAIN"), "{who:?}: {}", lookup.stdout);
    }
    // `resolve` re-resolves the default profiles into the bundle's cache.
    let out = h.shield_with_test_dns(&["resolve", &name, "--force"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("Resolved 2 IPs for {name} (forced)\n  {ALLOWED_V4}\n  {ALLOWED_V6}\n").as_str()),
        "{}",
        out.stderr
    );
    // Wildcards need the live tier: refused, and nothing is written.
    let before = bundle_snapshot(&dir);
    let out = h.shield_with_test_dns(&["allow", &name, "*.shield.test"]);
    assert_eq!(out.code, 1, "{who:?}: {}", out.stdout);
    assert!(
        out.stderr.starts_with(&format!(
            "Error: '*.shield.test': wildcard entries need live DNS resolution, which the {tier} tier does not do"
        )),
        "{}",
        out.stderr
    );
    assert!(before == bundle_snapshot(&dir), "{who:?}: a refused wildcard changed the bundle");
    h.profile("wild", "+*.shield.test\n");
    let other = format!("{name}-w");
    let out = h.shield_with_test_dns(&["prepare", &other, "--profiles", "wild"]);
    assert_eq!(out.code, 1, "{who:?}: {}", out.stdout);
    assert!(
        out.stderr.starts_with(&format!(
            "Error: wildcard entries need live DNS resolution, which the {tier} tier does not do: *.shield.test."
        )),
        "{}",
        out.stderr
    );
    assert!(!h.state_dir(&other).exists());
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_dnsmasq_static_tier() {
    static_tiers(Who::Root, "dnsmasq-static", NO_NFTSET_DNSMASQ);
}

#[test]
fn rootless_dnsmasq_static_tier() {
    static_tiers(Who::User, "dnsmasq-static", NO_NFTSET_DNSMASQ);
}

#[test]
fn rootless_lookup_tier_when_apparmor_confines_dnsmasq() {
    static_tiers(Who::User, "lookup", CONFINED_DNSMASQ);
}

/// The getent tier: no dnsmasq and no dig/drill on PATH. Names the nameserver does not know
/// (here: one only in /etc/hosts) are resolved with getent, and their addresses reach the
/// allow set.
#[test]
fn rootful_getent_tier_without_dnsmasq_or_dig() {
    let Some(e) = env() else { return };
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    h.profile("lab", "+hostsonly.shield.test\n+allowed.shield.test\n");
    h.file("config/config.yml", AUTO_TIER, 0o600);
    h.sh("mkdir -p tools && for t in podman nft nsenter getent; do ln -s \"$(command -v $t)\" tools/$t; done");
    h.file("hosts", &format!("127.0.0.1 localhost\n{UNLISTED_V4} hostsonly.shield.test\n"), 0o644);
    let name = format!("tsh-getent-{}", std::process::id());
    let path = format!("PATH={}", h.dir.join("tools").display());
    let shield = e.bin.join("terok-shield").display().to_string();
    let cmd = h.cmd("env", &[&path, &shield, "prepare", &name, "--profiles", "lab", "--json"]);
    let out = run(&mut with_test_files(&cmd, None, Some(&h.dir.join("hosts"))));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("DNS tier getent: "), "{}", out.stderr);
    let resolved = std::fs::read_to_string(h.state_dir(&name).join("resolved.ips")).unwrap_or_default();
    for want in [UNLISTED_V4, ALLOWED_V4] {
        assert!(resolved.lines().any(|l| l == want), "{want} not in resolved.ips: {resolved}");
    }
    let flags: Vec<String> = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let mut args: Vec<&str> = vec!["run", "-d"];
    args.extend(flags.iter().map(String::as_str));
    args.extend([e.image.as_str(), "sleep", "600"]);
    let out = h.podman(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    h.probe(&name, "getent tier", &[(UNLISTED_V4, true), (ALLOWED_V4, true), (DENIED_V4, false)]);
    h.podman(&["rm", "-f", &name]);
}

/// Rootful, with the host's nameserver on IPv6 only: prepare records it as the upstream, the
/// shield's resolver asks it over IPv6 from the host's namespace, and names resolve.
#[test]
fn rootful_ipv6_upstream() {
    let Some(e) = env() else { return };
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    h.profile("lab", "+allowed.shield.test\n");
    h.file("resolv.conf", "nameserver 2001:db8:100::53\n", 0o644);
    let name = format!("tsh-v6dns-{}", std::process::id());
    let shield = e.bin.join("terok-shield").display().to_string();
    let cmd = h.cmd(&shield, &["run", &name, "--profiles", "lab", "--", "-d", &e.image, "sleep", "600"]);
    let out = run(&mut with_test_files(&cmd, Some(&h.dir.join("resolv.conf")), None));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let upstream = std::fs::read_to_string(h.state_dir(&name).join("upstream.dns")).unwrap_or_default();
    assert_eq!(upstream, "2001:db8:100::53\n");
    h.probe(&name, "IPv6 upstream", &[("allowed.shield.test", true), ("unlisted.shield.test", false)]);
    h.podman(&["rm", "-f", &name]);
}
