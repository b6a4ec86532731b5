//! The live verbs on a running container: allow and deny, postures, revocation of live
//! flows, learned addresses across postures.

use super::harness::*;

fn live_control(who: Who) {
    let Some((h, name)) = shielded(who, "live", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let probe = |what: &str, want: &[(&str, bool)]| h.probe(&name, &format!("{who:?} {what}"), want);
    assert_eq!(h.shield(&["status", &name]).stdout, "up\n");
    probe("before", &[(ALLOWED_V4, true), (UNLISTED_V4, false), (ALLOWED_V6, false)]);

    let out = h.shield(&["allow", &name, UNLISTED_V4]);
    assert_eq!(
        (out.code, out.stdout.clone()),
        (0, format!("Allowed {UNLISTED_V4} -> {UNLISTED_V4} for {name}\n")),
        "{}",
        out.stderr
    );
    let out = h.shield(&["allow", &name, "2001:DB8:100::10/128"]);
    assert_eq!(out.stdout, format!("Allowed 2001:DB8:100::10/128 -> {ALLOWED_V6} for {name}\n"), "{}", out.stderr);
    let out = h.shield(&["deny", &name, ALLOWED_V4]);
    assert_eq!(out.stdout, format!("Denied {ALLOWED_V4} ({ALLOWED_V4}) for {name}\n"), "{}", out.stderr);
    probe("after allow and deny", &[(ALLOWED_V4, false), (UNLISTED_V4, true), (ALLOWED_V6, true)]);
    // Re-allowing a denied address takes it out of the deny set.
    assert_eq!(h.shield(&["allow", &name, ALLOWED_V4]).code, 0);
    probe("after re-allow", &[(ALLOWED_V4, true)]);
    assert_eq!(h.shield(&["deny", &name, ALLOWED_V4]).code, 0);

    let sd = h.state_dir(&name);
    assert_eq!(
        std::fs::read_to_string(sd.join("policy/live")).unwrap_or_default(),
        format!("+{UNLISTED_V4}\n+{ALLOWED_V6}\n-{ALLOWED_V4}\n")
    );
    let audit = std::fs::read_to_string(sd.join("audit.jsonl")).unwrap_or_default();
    assert!(
        audit.contains(&format!(
            "\"action\":\"allowed\",\"dest\":\"{UNLISTED_V4}\",\"detail\":\"target={UNLISTED_V4}\""
        )),
        "{audit}"
    );
    assert!(audit.contains(&format!("\"action\":\"denied\",\"dest\":\"{ALLOWED_V4}\"")), "{audit}");
    let rules = h.shield(&["rules", &name]);
    assert!(rules.stdout.starts_with("State: up\ntable inet terok_shield {"), "{}", rules.stdout);

    // Bad targets and unknown containers: one line, exit 1, nothing changed anywhere.
    let before = (bundle_snapshot(&sd), h.shield(&["rules", &name]).stdout);
    for args in [
        vec!["allow", name.as_str(), "1.2.3"],
        vec!["allow", name.as_str(), "10.0.0.0/33"],
        vec!["deny", name.as_str(), "::gg"],
        vec!["allow", name.as_str(), "*.*.example.com"],
        vec!["allow", name.as_str(), "bad$name"],
        vec!["allow", "no-such-container", "198.51.100.7"],
        vec!["allow", "../x", "198.51.100.7"],
    ] {
        let out = h.shield(&args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stdout);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("Error: "), "{args:?}: {}", out.stderr);
    }
    assert!(
        before == (bundle_snapshot(&sd), h.shield(&["rules", &name]).stdout),
        "{who:?}: a bad target changed something"
    );

    // 50 concurrent allows of distinct addresses: all 50 in the kernel and in policy/live.
    let e_bin = env().map(|e| e.bin.join("terok-shield").display().to_string()).unwrap_or_default();
    let script = format!("for i in $(seq 100 149); do {e_bin} allow {name} 198.51.100.$i >/dev/null & done; wait");
    h.sh(&script);
    let live = std::fs::read_to_string(sd.join("policy/live")).unwrap_or_default();
    let listing = h.shield(&["rules", &name]).stdout;
    for i in 100..150 {
        assert!(live.contains(&format!("+198.51.100.{i}\n")), "{who:?}: 198.51.100.{i} lost from policy/live");
        assert!(listing.contains(&format!("198.51.100.{i}")), "{who:?}: 198.51.100.{i} not in the kernel");
    }
    // An allow and a deny of the same target racing: file and kernel agree at the end.
    let script = format!("for i in 1 2 3 4 5; do {e_bin} allow {name} 198.51.100.99 >/dev/null & {e_bin} deny {name} 198.51.100.99 >/dev/null & done; wait");
    h.sh(&script);
    let live = std::fs::read_to_string(sd.join("policy/live")).unwrap_or_default();
    let allowed_in_file = live.contains("+198.51.100.99\n");
    assert!(allowed_in_file != live.contains("-198.51.100.99\n"), "one entry per target: {live}");
    let listing = h.shield(&["rules", &name]).stdout;
    let allow_set = listing.split("set t40_project_allow_v4 {").nth(1).and_then(|s| s.split('}').next()).unwrap_or("");
    let deny_set = listing.split("set t20_security_deny_v4 {").nth(1).and_then(|s| s.split('}').next()).unwrap_or("");
    assert_eq!(allow_set.contains("198.51.100.99"), allowed_in_file, "kernel allow set disagrees with policy/live");
    assert_eq!(deny_set.contains("198.51.100.99"), !allowed_in_file, "kernel deny set disagrees with policy/live");

    h.podman(&["rm", "-f", &name]);
    assert_eq!(h.shield(&["status", &name]).stdout, "offline\n");
}

#[test]
fn rootful_live_allow_and_deny() {
    live_control(Who::Root);
}

#[test]
fn rootless_live_allow_and_deny() {
    live_control(Who::User);
}

fn postures(who: Who) {
    let Some((h, name)) = shielded(who, "posture", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    assert_eq!(h.shield(&["deny", &name, DENIED_V4]).code, 0);
    let step = |args: &[&str], says: &str, state: &str, want: &[(&str, bool)]| {
        let mut full = args.to_vec();
        full.insert(1, &name);
        let out = h.shield(&full);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, format!("{says}\n").as_str()),
            "{who:?} {args:?}: {}",
            out.stderr
        );
        assert_eq!(h.shield(&["status", &name]).stdout, format!("{state}\n"), "{who:?} {args:?}");
        h.probe(&name, &format!("{who:?} {args:?}"), want);
    };
    let all = |a: bool, u: bool, d: bool, p: bool| {
        [(ALLOWED_V4, a), (UNLISTED_V4, u), (DENIED_V4, d), (PRIVATE_V4, p), (LINK_LOCAL_V4, p)]
    };
    step(&["down"], &format!("Shield down for {name}"), "down", &all(true, true, false, false));
    // DISENGAGED passes the same probes: each refusal above was the shield's.
    step(
        &["down", "--disengage"],
        &format!("Shield down for {name} (disengaged)"),
        "disengaged",
        &all(true, true, true, true),
    );
    step(&["quarantine"], &format!("Shield QUARANTINED for {name} — all traffic dropped"), "quarantine", &[]);
    h.probe_dropped(&name, &format!("{who:?} quarantine"), &[ALLOWED_V4]);
    let refused = h.shield(&["allow", &name, UNLISTED_V4]);
    assert_eq!(refused.code, 1, "{who:?}: allow while quarantined");
    assert!(refused.stderr.contains("quarantined?"), "{}", refused.stderr);
    step(&["up"], &format!("Shield up for {name}"), "up", &all(true, false, false, false));
    step(&["reset"], &format!("Shield reset for {name} — learned allow state forgotten"), "up", &[(ALLOWED_V4, true)]);
    // A bad container id is refused before anything changes.
    let out = h.shield(&["down", &name, "--container-id", "xyz"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, "Error: Unsafe container id: 'xyz'\n"));
    assert_eq!(h.shield(&["status", &name]).stdout, "up\n");
    let audit = std::fs::read_to_string(h.state_dir(&name).join("audit.jsonl")).unwrap_or_default();
    for action in ["shield_down", "shield_quarantine", "shield_up", "shield_reset"] {
        assert!(audit.contains(&format!("\"action\":\"{action}\"")), "{who:?}: no {action} row");
    }
    assert!(audit.contains("\"detail\":\"disengaged=True\""));
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_postures() {
    postures(Who::Root);
}

#[test]
fn rootless_postures() {
    postures(Who::User);
}

/// Revocation ends live flows: a connection open to a test host (an echo every 0.2 s)
/// stops passing traffic as soon as the host is denied, or the container quarantined.
fn revocation_ends_live_flows(who: Who, revoke: &[&str]) {
    let case: String = revoke.join("-").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let workload =
        format!("(while :; do echo ping; sleep 0.2; done) | nc {ALLOWED_V4} 7000 > /tmp/echo.log 2>&1; sleep 600");
    let Some((h, name)) = shielded(who, &format!("flow-{case}"), &[ALLOWED_V4], &["sh", "-c", &workload]) else {
        return;
    };
    let echoes =
        || h.podman(&["exec", &name, "grep", "-c", "ping", "/tmp/echo.log"]).stdout.trim().parse::<u32>().unwrap_or(0);
    let wait = |secs: f64| std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    wait(1.0);
    let (a, b) = (echoes(), {
        wait(1.0);
        echoes()
    });
    assert!(b > a, "{who:?}: the flow is not flowing before the revocation ({a} -> {b})");
    let mut args = vec![revoke[0], name.as_str()];
    args.extend(&revoke[1..]);
    let out = h.shield(&args);
    assert_eq!(out.code, 0, "{who:?} {revoke:?}: {}", out.stderr);
    wait(0.5);
    let c = echoes();
    wait(1.5);
    let d = echoes();
    assert_eq!(c, d, "{who:?} {revoke:?}: the open connection still passes traffic ({c} -> {d})");
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_deny_ends_live_flows() {
    revocation_ends_live_flows(Who::Root, &["deny", ALLOWED_V4]);
}

#[test]
fn rootless_deny_ends_live_flows() {
    revocation_ends_live_flows(Who::User, &["deny", ALLOWED_V4]);
}

#[test]
fn rootful_quarantine_ends_live_flows() {
    revocation_ends_live_flows(Who::Root, &["quarantine"]);
}

#[test]
fn rootless_deny_of_a_network_ends_live_flows() {
    revocation_ends_live_flows(Who::User, &["deny", "198.51.100.0/28"]);
}

/// Addresses learned from DNS answers survive down + up; a learned address that is denied
/// meanwhile never comes back. (dnsmasq fills t40_dns_v4 once the DNS work lands; here the
/// test puts them there through the container's netns.)
#[test]
fn learned_addresses_survive_postures_but_denied_ones_do_not() {
    let Some((h, name)) = shielded(Who::Root, "learned", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let pid = container_pid(&h, &name).to_string();
    let add = nft_in(
        &pid,
        &["add", "element", "inet", "terok_shield", "t40_dns_v4", &format!("{{ {UNLISTED_V4}, {DENIED_V4} }}")],
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    h.probe(&name, "learned", &[(UNLISTED_V4, true), (DENIED_V4, true)]);
    assert_eq!(h.shield(&["deny", &name, DENIED_V4]).code, 0);
    assert_eq!(h.shield(&["down", &name]).code, 0);
    assert_eq!(h.shield(&["up", &name]).code, 0);
    let learned = nft_in(&pid, &["list", "set", "inet", "terok_shield", "t40_dns_v4"]).stdout;
    assert!(learned.contains(UNLISTED_V4), "a learned address was lost: {learned}");
    assert!(!learned.contains(DENIED_V4), "a denied address came back: {learned}");
    h.probe(&name, "after down + up", &[(UNLISTED_V4, true), (DENIED_V4, false)]);
    assert_eq!(h.shield(&["reset", &name]).code, 0);
    h.probe(&name, "after reset", &[(UNLISTED_V4, false), (ALLOWED_V4, true)]);
    h.podman(&["rm", "-f", &name]);
}

/// A stricter posture ends the flows it does not admit (issue 14.1): a TCP and a UDP stream
/// to an unlisted test host, opened while the shield was down, stop passing traffic as soon
/// as it is up again, while a stream to an allowed host goes on. Likewise `reset` ends a
/// stream to a learned address, and `quarantine` ends the allowed one too.
fn stricter_postures_end_the_flows_they_do_not_admit(who: Who) {
    use crate::streams::{Stream, UdpEcho};
    use std::time::Duration;
    let Some((h, name)) = shielded(who, "stricter", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let pid = container_pid(&h, &name);
    // One UDP echo port per variant: the rootful and rootless tests may run at once.
    let udp_port = if who == Who::Root { 7101 } else { 7102 };
    let _echo = UdpEcho::on_test_host(UNLISTED_V4, udp_port);
    let shield = |args: &[&str]| {
        let out = h.shield(args);
        assert_eq!(out.code, 0, "{who:?} {args:?}: {}", out.stderr);
    };
    let flowing = |s: &Stream| s.flows_within(Duration::from_secs(3));
    let stopped = |s: &Stream| {
        std::thread::sleep(Duration::from_millis(300));
        let before = s.echoed();
        std::thread::sleep(Duration::from_millis(1500));
        s.echoed() == before
    };

    shield(&["down", &name]);
    let tcp = Stream::tcp(pid, UNLISTED_V4, 7000);
    let udp = Stream::udp(pid, UNLISTED_V4, udp_port);
    let allowed = Stream::tcp(pid, ALLOWED_V4, 7000);
    for (s, what) in [(&tcp, "tcp"), (&udp, "udp"), (&allowed, "allowed tcp")] {
        assert!(flowing(s), "{who:?}: the {what} stream does not flow while the shield is down");
    }
    shield(&["up", &name]);
    assert!(stopped(&tcp), "{who:?}: a TCP flow opened while down still passes after up");
    assert!(stopped(&udp), "{who:?}: a UDP flow opened while down still passes after up");
    assert!(flowing(&allowed), "{who:?}: up ended a flow to an allowed host");
    // A new connection to the unlisted host is refused as before (the proof that the
    // stopped streams were the shield's doing, not the test host's).
    h.probe(&name, &format!("{who:?} after up"), &[(UNLISTED_V4, false), (ALLOWED_V4, true)]);

    // reset: a flow to an address learned from DNS ends with the learned state.
    let add = nft_in(
        &pid.to_string(),
        &["add", "element", "inet", "terok_shield", "t40_dns_v4", &format!("{{ {UNLISTED_V4} }}")],
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    let learned = Stream::tcp(pid, UNLISTED_V4, 7000);
    assert!(flowing(&learned), "{who:?}: no flow to a learned address");
    shield(&["reset", &name]);
    assert!(stopped(&learned), "{who:?}: a flow to a forgotten learned address still passes after reset");
    assert!(flowing(&allowed), "{who:?}: reset ended a flow to an allowed host");

    // disengaged -> down: a flow to a private host ends, one to an unlisted public host goes on.
    shield(&["down", &name, "--disengage"]);
    let private = Stream::tcp(pid, PRIVATE_V4, 7000);
    let public = Stream::tcp(pid, UNLISTED_V4, 7000);
    assert!(flowing(&private) && flowing(&public), "{who:?}: streams do not flow while disengaged");
    shield(&["down", &name]);
    assert!(stopped(&private), "{who:?}: a flow to a private host still passes after down");
    assert!(flowing(&public), "{who:?}: down ended a flow it admits");

    // quarantine ends everything, the allowed stream included.
    shield(&["quarantine", &name]);
    assert!(stopped(&allowed), "{who:?}: a flow still passes after quarantine");
    drop((tcp, udp, allowed, learned, private, public));
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_stricter_postures_end_the_flows_they_do_not_admit() {
    stricter_postures_end_the_flows_they_do_not_admit(Who::Root);
}

#[test]
fn rootless_stricter_postures_end_the_flows_they_do_not_admit() {
    stricter_postures_end_the_flows_they_do_not_admit(Who::User);
}

/// A posture survives a restart (issue 14.2): quarantine and down hold across `podman
/// restart` and across stop + start; `up` is recorded like any other posture.
fn postures_survive_a_restart(who: Who) {
    let Some((h, name)) = shielded(who, "restart-posture", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let recorded = || std::fs::read_to_string(h.state_dir(&name).join("posture")).unwrap_or_default();
    let restart = |how: &str| {
        let steps: &[&[&str]] =
            if how == "restart" { &[&["restart", "-t", "0"]] } else { &[&["stop", "-t", "0"], &["start"]] };
        for step in steps {
            let mut args = step.to_vec();
            args.push(&name);
            let out = h.podman(&args);
            assert_eq!(out.code, 0, "{who:?} podman {args:?}: {}", out.stderr);
        }
    };
    let shield = |args: &[&str]| assert_eq!(h.shield(args).code, 0, "{who:?} {args:?}");
    shield(&["quarantine", &name]);
    assert_eq!(recorded(), "quarantine\n");
    for how in ["restart", "stop-start"] {
        restart(how);
        assert_eq!(h.shield(&["status", &name]).stdout, "quarantine\n", "{who:?}: quarantine lost on {how}");
        h.probe_dropped(&name, &format!("{who:?} quarantined after {how}"), &[ALLOWED_V4]);
    }
    shield(&["down", &name]);
    restart("restart");
    assert_eq!(h.shield(&["status", &name]).stdout, "down\n", "{who:?}: down lost on restart");
    h.probe(
        &name,
        &format!("{who:?} down after restart"),
        &[(ALLOWED_V4, true), (UNLISTED_V4, true), (PRIVATE_V4, false), (LINK_LOCAL_V4, false)],
    );
    shield(&["up", &name]);
    assert_eq!(recorded(), "up\n");
    restart("stop-start");
    assert_eq!(h.shield(&["status", &name]).stdout, "up\n");
    h.probe(&name, &format!("{who:?} up after restart"), &[(ALLOWED_V4, true), (UNLISTED_V4, false)]);
    // A garbled record fails the start closed (the hook does not guess).
    std::fs::write(h.state_dir(&name).join("posture"), "open\n").unwrap_or_else(|e| panic!("{e}"));
    let out = h.podman(&["restart", "-t", "0", &name]);
    assert_ne!(out.code, 0, "{who:?}: a garbled posture started the container");
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_postures_survive_a_restart() {
    postures_survive_a_restart(Who::Root);
}

#[test]
fn rootless_postures_survive_a_restart() {
    postures_survive_a_restart(Who::User);
}

/// A PID 1 that moves itself into a new network namespace (issue 14.9) does not disarm the
/// live verbs or the helper: the rest of the container stays in the shielded namespace, the
/// verbs reach it through the helper, and quarantine still ends its flows.
/// `unshare`: `-Urn` (new user and network namespaces) or `-U` (a user namespace only, the
/// network namespace kept: a join through it would fail).
fn a_pid_1_that_leaves_its_namespace_keeps_the_controls(who: Who, unshare: &str) {
    use crate::streams::Stream;
    let workload = format!("sleep 1000 & exec unshare {unshare} sleep 600");
    let tag = format!("ns-escape{}", unshare.trim_start_matches('-').to_lowercase());
    let Some((h, name)) = shielded(who, &tag, &[ALLOWED_V4], &["sh", "-c", &workload]) else { return };
    let pid1 = container_pid(&h, &name);
    let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/user")).ok();
    let child = || -> Option<u32> {
        let kids = std::fs::read_to_string(format!("/proc/{pid1}/task/{pid1}/children")).ok()?;
        kids.split_whitespace().next()?.parse().ok()
    };
    assert!(
        within(std::time::Duration::from_secs(5), || child().is_some_and(|c| ns(c).is_some() && ns(c) != ns(pid1))),
        "{who:?}: PID 1 did not move into a namespace of its own"
    );
    let left = child().unwrap_or(0);
    let helper = std::fs::read_to_string(h.state_dir(&name).join("reader.pid")).unwrap_or_default();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        std::path::Path::new(&format!("/proc/{}", helper.trim())).exists(),
        "{who:?}: the helper ended when PID 1 left"
    );
    assert_eq!(h.shield(&["status", &name]).stdout, "up\n", "{who:?}: status after PID 1 left");
    let allowed = Stream::tcp(left, ALLOWED_V4, 7000);
    assert!(allowed.flows_within(std::time::Duration::from_secs(3)), "{who:?}: no flow from the shielded namespace");
    let out = h.shield(&["allow", &name, UNLISTED_V4]);
    assert_eq!(out.code, 0, "{who:?}: allow after PID 1 left: {}", out.stderr);
    let unlisted = Stream::tcp(left, UNLISTED_V4, 7000);
    assert!(unlisted.flows_within(std::time::Duration::from_secs(3)), "{who:?}: the allow is not in force");
    let out = h.shield(&["quarantine", &name]);
    assert_eq!(out.code, 0, "{who:?}: quarantine after PID 1 left: {}", out.stderr);
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (s, what) in [(&allowed, "allowed"), (&unlisted, "newly allowed")] {
        let before = s.echoed();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert_eq!(s.echoed(), before, "{who:?}: the {what} flow passes after quarantine");
    }
    drop((allowed, unlisted));
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_a_pid_1_that_leaves_its_namespace_keeps_the_controls() {
    a_pid_1_that_leaves_its_namespace_keeps_the_controls(Who::Root, "-Urn");
    a_pid_1_that_leaves_its_namespace_keeps_the_controls(Who::Root, "-U");
}

#[test]
fn rootless_a_pid_1_that_leaves_its_namespace_keeps_the_controls() {
    a_pid_1_that_leaves_its_namespace_keeps_the_controls(Who::User, "-Urn");
    a_pid_1_that_leaves_its_namespace_keeps_the_controls(Who::User, "-U");
}
