//! What the shield reports: blocked rows, `watch`, the reader, `simple-clearance`, hub
//! events.

use super::harness::*;
use super::terminal::Terminal;

/// The NFLOG reader: a blocked connection is audited once, within a second, with address,
/// port, protocol and the domain its address came from; a flood of 1 000 blocked packets
/// gives one row; a domain carrying control characters is written sanitised; poststop
/// stops the reader.
///
/// Rootless runs with `audit.enabled: false`: the CLI writes no rows, the reader still does.
/// On the dnsmasq mode, where a name the allowlist lacks still resolves (and is then refused
/// by address); the shield's resolver answers such names as nonexistent (`resolver.rs`).
fn blocked_connections_are_audited(who: Who) {
    let audited = who == Who::Root;
    let config = if audited { DNSMASQ_LIVE.to_string() } else { format!("audit:\n  enabled: false\n{DNSMASQ_LIVE}") };
    let Some((h, name)) =
        start_shielded(who, "nflog", &["allowed.shield.test"], &["sleep", "600"], true, Some(&config))
    else {
        return;
    };
    let dir = h.state_dir(&name);
    let setup_rows =
        std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default().contains("\"action\":\"setup\"");
    assert_eq!(setup_rows, audited, "{who:?}: setup rows with audit {config:?}");
    let reader = std::fs::read_to_string(dir.join("reader.pid")).unwrap_or_default();
    let reader_proc = format!("/proc/{}", reader.trim());
    assert!(!reader.trim().is_empty() && std::path::Path::new(&reader_proc).exists(), "{who:?}: no reader");
    // One connection to a name the allowlist lacks: looked up (so dnsmasq logs the answer),
    // then refused.
    let out = h.podman(&[
        "exec",
        &name,
        "sh",
        "-c",
        "nslookup unlisted.shield.test >/dev/null; nc -w 2 unlisted.shield.test 80 </dev/null; true",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ok = within(std::time::Duration::from_secs(1), || !blocked_rows(&dir).is_empty());
    let log = std::fs::read_to_string(dir.join("reader.log")).unwrap_or_default();
    assert!(ok, "{who:?}: no blocked row within a second after the refusal; reader.log: {log}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let rows = blocked_rows(&dir);
    assert_eq!(rows.len(), 1, "{who:?}: {rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r["container"].as_str(), r["dest"].as_str(), r["port"].as_u64(), r["proto"].as_str(), r["domain"].as_str()),
        (Some(name.as_str()), Some(UNLISTED_V4), Some(80), Some("tcp"), Some("unlisted.shield.test")),
        "{who:?}: {r}"
    );
    // A flood: 1 000 packets to one address, one row.
    let pid = container_pid(&h, &name).to_string();
    let took = flood_from(&pid, "198.51.100.14", 9, 1000);
    assert!(took < std::time::Duration::from_secs(1), "the flood took {took:?}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let rows = blocked_rows(&dir);
    let flood: Vec<_> = rows.iter().filter(|r| r["dest"] == "198.51.100.14").collect();
    assert_eq!(flood.len(), 1, "{who:?}: {flood:?}");
    assert_eq!((flood[0]["port"].as_u64(), flood[0]["proto"].as_str()), (Some(9), Some("udp")));
    let rules = h.shield(&["rules", &name]).stdout;
    let blocked_rule = rules.lines().find(|l| l.contains("TEROK_SHIELD_BLOCKED")).unwrap_or_default().to_string();
    let packets: u64 = blocked_rule
        .split("packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(packets >= 1000, "{who:?}: the firewall refused only {packets} packets: {blocked_rule}");
    // A domain with control characters in the DNS log (as a dnsmasq that does not escape
    // would write it) reaches the audit log sanitised.
    let mut f =
        std::fs::OpenOptions::new().append(true).open(dir.join("dnsmasq.log")).unwrap_or_else(|e| panic!("{e}"));
    use std::io::Write;
    writeln!(f, "Nov 25 00:00:00 dnsmasq[1]: 9 127.0.0.1/1 reply \x1b[31mevil\x07.test is 198.51.100.15")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    flood_from(&pid, "198.51.100.15", 443, 1);
    assert!(within(std::time::Duration::from_secs(2), || blocked_rows(&dir)
        .iter()
        .any(|r| r["dest"] == "198.51.100.15")));
    let raw = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    assert!(raw.contains(r#""domain":" [31mevil .test""#), "{raw}");
    assert!(!raw.contains('\x1b') && !raw.contains("\\u001b"), "{raw}");
    let rows: Vec<serde_json::Value> =
        raw.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    check_schema("audit-row", &rows);
    // poststop stops the reader.
    h.podman(&["rm", "-f", &name]);
    let gone = within(std::time::Duration::from_secs(5), || !std::path::Path::new(&reader_proc).exists());
    assert!(gone, "{who:?}: the reader outlived its container");
}

#[test]
fn rootful_blocked_connections_are_audited() {
    blocked_connections_are_audited(Who::Root);
}

#[test]
fn rootless_blocked_connections_are_audited() {
    blocked_connections_are_audited(Who::User);
}

/// `watch`: events from the three sources, as JSON lines, sanitised, ended by SIGTERM.
fn watch_streams_events(who: Who) {
    let Some((h, name)) =
        start_shielded(who, "watch", &["allowed.shield.test"], &["sleep", "600"], true, Some(DNSMASQ_LIVE))
    else {
        return;
    };
    let e = env().unwrap_or_else(|| unreachable!());
    let mut child = h
        .cmd(&e.bin.join("terok-shield").display().to_string(), &["watch", &name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| unreachable!());
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<String>>()
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let script = "nslookup unlisted.shield.test >/dev/null; nc -w 2 unlisted.shield.test 80 </dev/null; true";
    assert_eq!(h.podman(&["exec", &name, "sh", "-c", script]).code, 0);
    // A query for a name with an escape sequence in it, to the container's dnsmasq.
    let pid = container_pid(&h, &name).to_string();
    dns_query_from(&pid, &[b"bad\x1b[31m\x07", b"shield", b"test"]);
    // dnsmasq 2.90 logs that as `<name unprintable>`; another dnsmasq might write it raw.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(h.state_dir(&name).join("dnsmasq.log"))
        .unwrap_or_else(|e| panic!("{e}"));
    use std::io::Write;
    writeln!(f, "Nov 25 00:00:00 dnsmasq[1]: 9 127.0.0.1/1 query[A] raw\x1b[31m\x07.shield.test from 127.0.0.1")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    assert_eq!(h.shield(&["allow", &name, ALLOWED_V4]).code, 0);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    terminate(&child, nix::sys::signal::Signal::SIGTERM);
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    let lines = lines.join().unwrap_or_default();
    let text = lines.join("\n");
    assert!(status.success(), "{who:?}: watch ended with {status}: {text}");
    let events: Vec<serde_json::Value> =
        lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    let has = |f: &dyn Fn(&serde_json::Value) -> bool| events.iter().any(f);
    assert!(
        has(&|e| e["source"] == "dns" && e["action"] == "blocked_query" && e["domain"] == "unlisted.shield.test"),
        "{who:?}: {text}"
    );
    assert!(
        has(&|e| e["source"] == "nflog"
            && e["action"] == "queued_connection"
            && e["dest"] == UNLISTED_V4
            && e["port"] == 80
            && e["domain"] == "unlisted.shield.test"),
        "{who:?}: {text}"
    );
    assert!(has(&|e| e["source"] == "audit" && e["action"] == "allowed" && e["dest"] == ALLOWED_V4), "{who:?}: {text}");
    assert!(!has(&|e| e["source"] == "dns" && e["domain"] == "allowed.shield.test"), "{who:?}: {text}");
    assert!(
        has(&|e| e["source"] == "dns" && e["domain"].as_str().is_some_and(|d| d.contains("[31m"))),
        "{who:?}: {text}"
    );
    assert!(lines.iter().all(|l| !l.chars().any(|c| c.is_control()) && !l.contains("\\u00")), "{who:?}: {text:?}");
    check_schema("watch-event", &events);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_watch_streams_events() {
    watch_streams_events(Who::Root);
}

#[test]
fn rootless_watch_streams_events() {
    watch_streams_events(Who::User);
}

/// The container starts, shielded, when its NFLOG reader cannot: the bridge hook is soft.
fn starts_without_a_reader(who: Who) {
    let Some(e) = env() else { return };
    ensure_setup(who);
    let h = Home::new(who);
    h.profile("lab", &format!("+{ALLOWED_V4}\n"));
    // The soft reader of the dnsmasq modes (the resolver's helper fails the start instead:
    // lifecycle.rs).
    h.file("config/config.yml", DNSMASQ_LIVE, 0o600);
    let name = format!("tsh-noreader-{}-{who:?}", std::process::id()).to_lowercase();
    let out = h.shield(&["prepare", &name, "--profiles", "lab", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let flags: Vec<String> = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    // reader.log as a directory: the hook cannot open the reader's log, so it cannot start it.
    h.sh(&format!("mkdir {}", h.state_dir(&name).join("reader.log").display()));
    let mut args: Vec<&str> = vec!["run", "-d"];
    args.extend(flags.iter().map(String::as_str));
    args.extend([e.image.as_str(), "sleep", "600"]);
    let out = h.podman(&args);
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    h.probe(&name, &format!("{who:?} without a reader"), &[(ALLOWED_V4, true), (UNLISTED_V4, false)]);
    assert!(!h.state_dir(&name).join("reader.pid").exists());
    let log = std::fs::read_to_string(h.state_dir(&name).join("hook-error.log")).unwrap_or_default();
    assert!(log.contains("terok-shield bridge hook: cannot start the reader"), "{who:?}: {log}");
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_container_starts_when_the_reader_cannot() {
    starts_without_a_reader(Who::Root);
}

#[test]
fn rootless_container_starts_when_the_reader_cannot() {
    starts_without_a_reader(Who::User);
}

/// `simple-clearance` on a pseudo-terminal: a blocked destination is asked about, a wrong
/// answer is explained, `a` allows it (and the container then reaches it).
fn simple_clearance(who: Who) {
    let Some((h, name)) =
        start_shielded(who, "clear", &["allowed.shield.test"], &["sleep", "600"], true, Some(DNSMASQ_LIVE))
    else {
        return;
    };
    let e = env().unwrap_or_else(|| unreachable!());
    let mut term =
        Terminal::spawn(h.cmd(&e.bin.join("terok-shield").display().to_string(), &["simple-clearance", &name]));
    term.wait_for("Watching for blocked connections... (Ctrl-C to stop)");
    let script = "nslookup unlisted.shield.test >/dev/null; nc -w 2 unlisted.shield.test 80 </dev/null; true";
    assert_eq!(h.podman(&["exec", &name, "sh", "-c", script]).code, 0);
    term.wait_for(&format!("[BLOCKED] {UNLISTED_V4} (unlisted.shield.test) :80 — allow/port/deny? "));
    term.type_line("maybe");
    term.wait_for("  Unknown input. Type 'a' to allow, 'p' to allow this port only, or 'd' to deny.");
    term.type_line("p");
    term.wait_for(&format!("  ✓ allowed {UNLISTED_V4}:80 (unlisted.shield.test)"));
    h.probe(&name, "after the verdict", &[(UNLISTED_V4, true)]);
    let live = std::fs::read_to_string(h.state_dir(&name).join("policy/live")).unwrap_or_default();
    assert_eq!(live, format!("+{UNLISTED_V4}:80\n"), "this port only");
    let status = term.stop(nix::sys::signal::Signal::SIGINT);
    assert!(status.success(), "{status}");
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_simple_clearance_on_a_terminal() {
    simple_clearance(Who::Root);
}

#[test]
fn rootless_simple_clearance_on_a_terminal() {
    simple_clearance(Who::User);
}

/// A stand-in clearance hub at `$XDG_RUNTIME_DIR/terok/events/<id12>/ingester.sock` of
/// `who`: collects every line it is sent.
/// Hub events: `pending` for a blocked destination (with the container's dossier), the
/// posture events of `up`/`down`, and `container_exited` when the container goes.
fn hub_events(who: Who) {
    let Some(e) = env() else { return };
    ensure_setup(who);
    let h = Home::new(who);
    h.profile("lab", "+allowed.shield.test\n");
    h.file("config/config.yml", DNSMASQ_LIVE, 0o600);
    let name = format!("tsh-hub-{}-{who:?}", std::process::id()).to_lowercase();
    let out = h.shield_with_test_dns(&["prepare", &name, "--profiles", "lab", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let flags: Vec<String> = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let mut args: Vec<&str> = vec!["run", "-d", "--annotation", "dossier.task=t-42"];
    args.extend(flags.iter().map(String::as_str));
    args.extend([e.image.as_str(), "sleep", "600"]);
    let out = run(&mut with_test_dns(&h.cmd("podman", &args)));
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    let id = h.podman(&["inspect", "--format", "{{.Id}}", &name]).stdout.trim().to_string();
    let hub = Hub::listen(who, &id);
    let script = "nslookup unlisted.shield.test >/dev/null; nc -w 2 unlisted.shield.test 80 </dev/null; true";
    assert_eq!(h.podman(&["exec", &name, "sh", "-c", script]).code, 0);
    let p = hub.wait_for("pending", |v| v["type"] == "pending");
    assert_eq!(
        (&p["container"], &p["id"], &p["dest"], &p["port"], &p["proto"], &p["domain"], &p["dossier"]),
        (
            &serde_json::json!(name),
            &serde_json::json!(format!("{name}:1")),
            &serde_json::json!(UNLISTED_V4),
            &serde_json::json!(80),
            &serde_json::json!(6),
            &serde_json::json!("unlisted.shield.test"),
            &serde_json::json!({"task": "t-42"})
        ),
        "{who:?}: {p}"
    );
    assert!(p["ts"].as_str().is_some_and(|t| t.len() == "2026-01-01T00:00:00.000000+00:00".len()), "{p}");
    for (args, kind) in [
        (vec!["down", name.as_str(), "--container-id", id.as_str()], "shield_down"),
        (vec!["down", name.as_str(), "--container-id", id.as_str(), "--disengage"], "shield_disengaged"),
        (vec!["up", name.as_str(), "--container-id", id.as_str()], "shield_up"),
    ] {
        assert_eq!(h.shield(&args).code, 0);
        let v = hub.wait_for(kind, |v| v["type"] == kind);
        assert_eq!(v["container"], serde_json::json!(name), "{v}");
    }
    let out = h.podman(&["rm", "-f", &name]);
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    let v = hub.wait_for("container_exited", |v| v["type"] == "container_exited");
    assert_eq!(v["reason"], "poststop", "{v}");
}

#[test]
fn rootful_hub_events() {
    hub_events(Who::Root);
}

#[test]
fn rootless_hub_events() {
    hub_events(Who::User);
}

/// A flood of 100 000 distinct destinations (issue 14.6) leaves at most the audit budget
/// (60 rows a minute, documented in decisions.md) plus `suppressed` rows in the audit log,
/// and the container's allowed traffic goes on. The destinations are 198.18.0.0/15, routed
/// inside the container's namespace to a sink (a veth whose peer is down), so nothing the
/// shield let through could leave.
fn a_flood_of_destinations_stays_within_the_audit_budget(who: Who) {
    let Some((h, name)) = shielded(who, "flood", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let pid_n = container_pid(&h, &name);
    sink_routes(&pid_n.to_string(), &["198.18.0.0/15"]);
    let audit = h.state_dir(&name).join("audit.jsonl");
    let before = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0);
    let start = std::time::Instant::now();
    std::thread::spawn(move || {
        enter_net_of(pid_n);
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| panic!("{e}"));
        for i in 0..100_000u32 {
            let dest = std::net::Ipv4Addr::from(0xC612_0000 + 4 + i);
            let _ = sock.send_to(b"x", (dest, 9));
        }
    })
    .join()
    .unwrap_or_else(|_| panic!("flood thread"));
    let sent_in = start.elapsed();
    assert!(sent_in.as_secs() < 60, "{who:?}: the flood took {sent_in:?}");
    let suppressed = |v: &serde_json::Value| v["action"] == "suppressed";
    let rows = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .collect()
    };
    assert!(within(std::time::Duration::from_secs(5), || rows().iter().any(suppressed)), "{who:?}: no suppressed row");
    h.probe(&name, &format!("{who:?} after the flood"), &[(ALLOWED_V4, true), (UNLISTED_V4, false)]);
    let all = rows();
    let blocked = all.iter().filter(|v| v["action"] == "blocked").count() as u64;
    let left_out: u64 = all.iter().filter(|v| suppressed(v)).filter_map(|v| v["count"].as_u64()).sum();
    // The burst, plus one a second for as long as the flood and the probes took.
    let budget = 60 + start.elapsed().as_secs() + 1;
    assert!(blocked <= budget, "{who:?}: {blocked} blocked rows for a budget of {budget}");
    assert!(left_out > 0, "{who:?}: the suppressed rows count nothing");
    let grew = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0) - before;
    assert!(grew < 64 * 1024, "{who:?}: the audit log grew by {grew} bytes");
    eprintln!(
        "{who:?}: 100000 destinations in {sent_in:?}: {blocked} blocked rows, {left_out} left out, +{grew} bytes"
    );
    check_schema("audit-row", &all);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_a_flood_of_destinations_stays_within_the_audit_budget() {
    a_flood_of_destinations_stays_within_the_audit_budget(Who::Root);
}

#[test]
fn rootless_a_flood_of_destinations_stays_within_the_audit_budget() {
    a_flood_of_destinations_stays_within_the_audit_budget(Who::User);
}

/// The helper gives up what it does not need once bound (issue 14.10): with the resolver it
/// keeps CAP_NET_ADMIN alone, in every set, and its file system is the state dir, /proc
/// and the dossier (Landlock, on kernels that offer it; the test machine's does).
fn the_helper_is_confined(who: Who) {
    let Some((h, name)) = shielded(who, "confined", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let sd = h.state_dir(&name);
    let pid = std::fs::read_to_string(sd.join("reader.pid")).unwrap_or_default().trim().to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field =
        |k: &str| status.lines().find_map(|l| l.strip_prefix(k)).map(|v| v.trim().to_string()).unwrap_or_default();
    // CAP_NET_ADMIN is bit 12.
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        assert_eq!(field(set), "0000000000001000", "{who:?}: {set} of the helper");
    }
    for set in ["CapInh:", "CapAmb:"] {
        assert_eq!(field(set), "0000000000000000", "{who:?}: {set} of the helper");
    }
    assert_eq!(field("NoNewPrivs:"), "1", "{who:?}");
    let log = std::fs::read_to_string(sd.join("reader.log")).unwrap_or_default();
    assert!(log.contains("capabilities: kept CAP_NET_ADMIN"), "{who:?}: {log}");
    assert!(log.contains("landlock: the state dir, /proc and the dossier only"), "{who:?}: {log}");
    // And it still does its work: a name resolves and its address answers.
    h.probe(&name, &format!("{who:?} confined"), &[(ALLOWED_V4, true), (UNLISTED_V4, false)]);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_the_helper_is_confined() {
    the_helper_is_confined(Who::Root);
}

#[test]
fn rootless_the_helper_is_confined() {
    the_helper_is_confined(Who::User);
}
