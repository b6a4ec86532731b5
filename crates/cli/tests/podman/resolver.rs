//! The shield's own resolver (the default DNS mode), rootful and rootless, through the test
//! DNS server, whose log shows every query that reached it: allowed names answer and open at
//! once, nothing else leaves (unlisted names, TXT lookups, queries sent past the resolver to
//! any upstream), live allow and deny act at once, answers expire while open flows go on,
//! restarts keep it all, hostile packets do not crash it, and a dead resolver opens nothing.

use std::net::IpAddr;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::harness::*;
use super::terminal::Terminal;

/// Every query the test DNS server received so far.
fn server_log() -> String {
    std::fs::read_to_string("/run/tshield-hosts/dnsmasq.log").unwrap_or_default()
}

/// What asking `server:53` for `(qname, qtype)` from inside the network namespace of `pid`
/// gave: the answer's code and addresses, or the error of the send or receive.
fn ask(
    pid: u32,
    server: &str,
    qname: &str,
    qtype: RecordType,
) -> Result<(ResponseCode, Vec<IpAddr>), std::io::ErrorKind> {
    let mut m = Message::query();
    m.metadata.id = 0x5a5a;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(format!("{qname}.")).unwrap_or_else(|e| panic!("{e}")), qtype));
    let bytes = m.to_vec().unwrap_or_else(|e| panic!("{e}"));
    let reply = exchange(pid, server, bytes)?;
    let m = Message::from_vec(&reply).map_err(|_| std::io::ErrorKind::InvalidData)?;
    let addrs = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Ok((m.metadata.response_code, addrs))
}

/// One datagram to `server:53` from inside `pid`'s network namespace, and the reply (2 s).
fn exchange(pid: u32, server: &str, bytes: Vec<u8>) -> Result<Vec<u8>, std::io::ErrorKind> {
    let server: IpAddr = server.parse().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        enter_net_of(pid);
        let any = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let sock = std::net::UdpSocket::bind(any).map_err(|e| e.kind())?;
        sock.set_read_timeout(Some(std::time::Duration::from_secs(2))).map_err(|e| e.kind())?;
        sock.send_to(&bytes, (server, 53)).map_err(|e| e.kind())?;
        let mut buf = vec![0u8; 65535];
        let (n, _) = sock.recv_from(&mut buf).map_err(|e| e.kind())?;
        Ok(buf[..n].to_vec())
    })
    .join()
    .unwrap_or_else(|_| panic!("query thread"))
}

/// Bytes to the resolver over TCP (length-prefixed as given), from inside `pid`'s namespace.
fn tcp_send(pid: u32, bytes: Vec<u8>) {
    std::thread::spawn(move || {
        enter_net_of(pid);
        if let Ok(mut s) = std::net::TcpStream::connect("127.0.0.1:53") {
            use std::io::Write;
            let _ = s.write_all(&bytes);
        }
    })
    .join()
    .unwrap_or_else(|_| panic!("tcp thread"));
}

/// A long-lived echo flow from the container to `target:7000` (a ping every 0.2 s); the
/// returned function counts the echoes so far.
fn echo_flow<'a>(h: &'a Home, name: &'a str, target: &str, log: &'a str) -> impl Fn() -> u32 + 'a {
    let script = format!("(while :; do echo ping; sleep 0.2; done) | nc {target} 7000 > {log} 2>&1");
    assert_eq!(h.podman(&["exec", "-d", name, "sh", "-c", &script]).code, 0);
    move || h.podman(&["exec", name, "grep", "-c", "ping", log]).stdout.trim().parse().unwrap_or(0)
}

fn wait(secs: f64) {
    std::thread::sleep(std::time::Duration::from_secs_f64(secs));
}

/// The elements of a learned set of the container (nft, from the host).
fn learned(pid: u32, v6: bool) -> String {
    nft_in(&pid.to_string(), &["list", "set", "inet", "terok_shield", if v6 { "t40_dns_v6" } else { "t40_dns_v4" }])
        .stdout
}

fn start_podman(h: &Home, name: &str) {
    let out = match h.who {
        Who::Root => run(&mut with_test_dns(&h.cmd("podman", &["start", name]))),
        Who::User => h.podman(&["start", name]),
    };
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// Everything a user of a security tool takes for granted of its DNS.
fn strict_dns(who: Who) {
    let tag = format!("{}-{who:?}", std::process::id()).to_lowercase();
    let wild = format!("wild-{tag}.shield.test");
    // The wildcard's names point at a test host of their own (the denied-host address; no
    // deny is in force here), so a later refusal of UNLISTED_V4 is not masked.
    test_name(&format!("a.{wild}"), DENIED_V4);
    test_name(&wild, DENIED_V4);
    let allow = ["allowed.shield.test".to_string(), format!("*.{wild}")];
    let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
    let Some((h, name)) = start_shielded(who, "strict", &allow, &["sleep", "600"], true, None) else { return };
    let read = |f: &str| std::fs::read_to_string(h.state_dir(&name).join(f)).unwrap_or_default();
    assert_eq!(read("dns.tier"), "resolver\n");
    assert_eq!(read("resolv.conf"), "nameserver 127.0.0.1\noptions ndots:0\n");
    assert!(!h.state_dir(&name).join("dnsmasq.conf").exists(), "{who:?}: the resolver mode runs no dnsmasq");
    let rules = h.shield(&["rules", &name]).stdout;
    assert!(!rules.contains("dport 53"), "{who:?}: the ruleset lets DNS out:\n{rules}");
    let pid = container_pid(&h, &name);
    let secret = |what: &str| format!("{what}-{tag}-{}", std::process::id() % 9973);

    // Allowed names answer, and the first connection after the answer gets through (the
    // probe resolves the name itself and connects at once); a name under an allowed one,
    // and one under a wildcard, likewise.
    h.probe(
        &name,
        &format!("{who:?} allowed names"),
        &[("allowed.shield.test", true), ("www.allowed.shield.test", true), (&format!("a.{wild}"), true)],
    );
    assert!(learned(pid, false).contains(ALLOWED_V4), "{who:?}: {}", learned(pid, false));
    assert_eq!(
        ask(pid, "127.0.0.1", "allowed.shield.test", RecordType::AAAA).map(|r| r.1),
        Ok(vec![ALLOWED_V6.parse().unwrap_or_else(|_| unreachable!())])
    );
    assert!(learned(pid, true).contains(ALLOWED_V6), "{who:?}: {}", learned(pid, true));
    // A wildcard is only what is under its name.
    assert_eq!(ask(pid, "127.0.0.1", &wild, RecordType::A).map(|r| r.0), Ok(ResponseCode::NXDomain));

    // Nothing else leaves: unlisted names, TXT lookups (of an unlisted and of an allowed
    // name), and queries sent straight to any upstream the container might try.
    let unlisted = format!("{}.exfil.shield.test", secret("unlisted"));
    assert_eq!(ask(pid, "127.0.0.1", &unlisted, RecordType::A).map(|r| r.0), Ok(ResponseCode::NXDomain));
    let txt = format!("{}.exfil.shield.test", secret("txt"));
    assert_eq!(ask(pid, "127.0.0.1", &txt, RecordType::TXT).map(|r| r.0), Ok(ResponseCode::NXDomain));
    let allowed_txt = format!("{}.allowed.shield.test", secret("allowedtxt"));
    assert_eq!(ask(pid, "127.0.0.1", &allowed_txt, RecordType::TXT), Ok((ResponseCode::NoError, vec![])));
    let mut direct = Vec::new();
    for server in ["198.51.100.53", "2001:db8:100::53", "10.0.2.3", "169.254.1.1"] {
        let q = format!("{}.exfil.shield.test", secret(&format!("direct{}", direct.len())));
        let got = ask(pid, server, &q, RecordType::A);
        assert!(got.is_err(), "{who:?}: {server} answered {q}: {got:?}");
        direct.push(q);
    }
    wait(0.5);
    let log = server_log();
    for leaked in [&unlisted, &txt, &allowed_txt].into_iter().chain(&direct) {
        assert!(!log.contains(leaked.as_str()), "{who:?}: {leaked} reached the test DNS server");
    }
    assert!(log.contains("query[A] allowed.shield.test from 198.18.0.1"), "{who:?}: the resolver never asked upstream");

    // Hostile bytes: a compression loop, a pointer to itself, an oversized name, a message
    // claiming 65 535 answers, garbage over TCP. The resolver lives on.
    let mut looped = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
    let _ = exchange(pid, "127.0.0.1", looped.clone());
    looped[13] = 14;
    looped.extend_from_slice(&[0xc0, 12]);
    let _ = exchange(pid, "127.0.0.1", looped);
    let mut long = vec![0x12, 0x35, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for _ in 0..10 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    let _ = exchange(pid, "127.0.0.1", long);
    let _ = exchange(pid, "127.0.0.1", vec![0, 1, 1, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0, 1]);
    tcp_send(pid, vec![0xff, 0xff, 1, 2, 3]);
    tcp_send(pid, vec![0, 3, 1, 2, 3]);
    assert_eq!(ask(pid, "127.0.0.1", "allowed.shield.test", RecordType::A).map(|r| r.0), Ok(ResponseCode::NoError));

    // A live allow resolves from the next question on; a deny stops it, and takes out and
    // cuts what was learned for the name.
    assert_eq!(ask(pid, "127.0.0.1", "unlisted.shield.test", RecordType::A).map(|r| r.0), Ok(ResponseCode::NXDomain));
    let out = h.shield(&["allow", &name, "unlisted.shield.test"]);
    assert_eq!(
        out.stdout,
        format!("Allowed unlisted.shield.test -> each address the resolver answers for {name}\n"),
        "{}",
        out.stderr
    );
    h.probe(&name, &format!("{who:?} after allow"), &[("unlisted.shield.test", true)]);
    let flow = echo_flow(&h, &name, "unlisted.shield.test", "/tmp/unlisted.log");
    wait(1.0);
    let before = flow();
    wait(0.6);
    assert!(flow() > before, "{who:?}: the flow to the allowed name does not flow");
    let out = h.shield(&["deny", &name, "unlisted.shield.test"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(UNLISTED_V4), "{who:?}: the deny took no address out: {}", out.stdout);
    wait(0.5);
    let cut = flow();
    wait(1.0);
    assert_eq!(flow(), cut, "{who:?}: the open flow to the denied name still passes traffic");
    assert!(!learned(pid, false).contains(UNLISTED_V4), "{who:?}: {}", learned(pid, false));
    assert_eq!(ask(pid, "127.0.0.1", "unlisted.shield.test", RecordType::A).map(|r| r.0), Ok(ResponseCode::NXDomain));
    h.probe(&name, &format!("{who:?} after deny"), &[(UNLISTED_V4, false)]);

    // A restart keeps it all: the profile's names, the live deny, the wildcard.
    assert_eq!(h.podman(&["stop", "-t", "0", &name]).code, 0);
    start_podman(&h, &name);
    let pid = container_pid(&h, &name);
    h.probe(&name, &format!("{who:?} after restart"), &[("allowed.shield.test", true), (&format!("a.{wild}"), true)]);
    assert_eq!(ask(pid, "127.0.0.1", "unlisted.shield.test", RecordType::A).map(|r| r.0), Ok(ResponseCode::NXDomain));

    // A killed resolver fails closed: names stop resolving, nothing opens.
    let reader: i32 = read("reader.pid").trim().parse().unwrap_or(0);
    assert!(reader > 0, "{who:?}: no helper");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(reader), nix::sys::signal::Signal::SIGKILL);
    wait(0.3);
    assert!(ask(pid, "127.0.0.1", "allowed.shield.test", RecordType::A).is_err(), "{who:?}: a dead resolver answered");
    h.probe(&name, &format!("{who:?} resolver gone"), &[(UNLISTED_V4, false), ("allowed.shield.test", false)]);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_strict_dns() {
    strict_dns(Who::Root);
}

#[test]
fn rootless_strict_dns() {
    strict_dns(Who::User);
}

/// Learned addresses expire with the answer's TTL (clamped, here to 2 s): a new connection
/// after that is refused until the name is asked again, while a flow opened before goes on
/// (the firewall accepts established flows before it looks at any set).
fn answers_expire_but_open_flows_go_on(who: Who) {
    let config = "dns:\n  ttl_min: 2\n  ttl_max: 2\n";
    let Some((h, name)) = start_shielded(who, "ttl", &["allowed.shield.test"], &["sleep", "600"], true, Some(config))
    else {
        return;
    };
    let pid = container_pid(&h, &name);
    let script = format!("nslookup allowed.shield.test 127.0.0.1 >/dev/null; (while :; do echo ping; sleep 0.2; done) | nc {ALLOWED_V4} 7000 > /tmp/ttl.log 2>&1");
    assert_eq!(h.podman(&["exec", "-d", &name, "sh", "-c", &script]).code, 0);
    let echoes =
        || h.podman(&["exec", &name, "grep", "-c", "ping", "/tmp/ttl.log"]).stdout.trim().parse::<u32>().unwrap_or(0);
    wait(1.0);
    assert!(learned(pid, false).contains("timeout 2s"), "{who:?}: {}", learned(pid, false));
    wait(2.5);
    assert!(!learned(pid, false).contains(ALLOWED_V4), "{who:?}: the element did not expire: {}", learned(pid, false));
    let a = echoes();
    wait(1.0);
    assert!(echoes() > a, "{who:?}: the open flow stopped when its address expired");
    h.probe(&name, &format!("{who:?} expired"), &[(ALLOWED_V4, false)]);
    h.probe(&name, &format!("{who:?} asked again"), &[("allowed.shield.test", true)]);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_answers_expire_but_open_flows_go_on() {
    answers_expire_but_open_flows_go_on(Who::Root);
}

#[test]
fn rootless_answers_expire_but_open_flows_go_on() {
    answers_expire_but_open_flows_go_on(Who::User);
}

/// A refused name is reported by name, before any address exists: one `dns_refused` audit
/// row, a `watch` event, a hub `pending` event; `simple-clearance` offers to allow the name,
/// and `a` makes it resolve.
fn refused_names_are_reported(who: Who) {
    let Some((h, name)) = start_shielded(who, "refused", &["allowed.shield.test"], &["sleep", "600"], true, None)
    else {
        return;
    };
    let e = env().unwrap_or_else(|| unreachable!());
    let tag = format!("refused-{}-{who:?}", std::process::id()).to_lowercase();
    let refused = format!("{tag}.shield.test");
    test_name(&refused, UNLISTED_V4);
    let id = h.podman(&["inspect", "--format", "{{.Id}}", &name]).stdout.trim().to_string();
    let hub = Hub::listen(who, &id);
    let mut watch = h
        .cmd(&e.bin.join("terok-shield").display().to_string(), &["watch", &name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = watch.stdout.take().unwrap_or_else(|| unreachable!());
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<String>>()
    });
    wait(1.0);
    for _ in 0..3 {
        let out = h.podman(&["exec", &name, "nslookup", &refused, "127.0.0.1"]);
        assert!(
            out.stdout.contains("NXDOMAIN") || out.stderr.contains("NXDOMAIN"),
            "{who:?}: {}{}",
            out.stdout,
            out.stderr
        );
    }
    let p = hub.wait_for("pending by name", |v| v["type"] == "pending" && v["domain"] == refused.as_str());
    assert_eq!(
        (&p["dest"], &p["port"], &p["query_type"]),
        (&serde_json::json!(""), &serde_json::json!(0), &serde_json::json!("A")),
        "{p}"
    );
    let dir = h.state_dir(&name);
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let refusals: Vec<_> =
        rows.iter().filter(|r| r["action"] == "dns_refused" && r["domain"] == refused.as_str()).collect();
    assert_eq!(refusals.len(), 1, "{who:?}: one row per name per 30 s: {refusals:?}");
    check_schema("audit-row", &rows);
    terminate(&watch, nix::sys::signal::Signal::SIGTERM);
    let _ = watch.wait();
    let events: Vec<serde_json::Value> = lines
        .join()
        .unwrap_or_default()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    // nslookup asks A and AAAA: a watch event for each refused question.
    let queries: Vec<_> = events.iter().filter(|v| v["source"] == "dns" && v["domain"] == refused.as_str()).collect();
    assert!(queries.iter().all(|q| q["action"] == "blocked_query"), "{who:?}: {queries:?}");
    let a = queries.iter().filter(|q| q["query_type"] == "A").count();
    assert_eq!((a, queries.len()), (3, 6), "{who:?}: a watch event per refused question: {events:?}");
    check_schema("watch-event", &events);

    // simple-clearance asks about the name, and `a` allows it.
    let mut term =
        Terminal::spawn(h.cmd(&e.bin.join("terok-shield").display().to_string(), &["simple-clearance", &name]));
    term.wait_for("Watching for blocked connections");
    let _ = h.podman(&["exec", &name, "nslookup", &refused, "127.0.0.1"]);
    term.wait_for(&format!("[BLOCKED] {refused} (name lookup) — allow/deny? "));
    term.type_line("a");
    term.wait_for(&format!("  ✓ allowed {refused}"));
    h.probe(&name, &format!("{who:?} after clearance"), &[(&refused, true)]);
    let status = term.stop(nix::sys::signal::Signal::SIGINT);
    assert!(status.success(), "{who:?}: {status}");
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_refused_names_are_reported() {
    refused_names_are_reported(Who::Root);
}

#[test]
fn rootless_refused_names_are_reported() {
    refused_names_are_reported(Who::User);
}

/// Under krun the resolver listens on 169.254.1.3 (added to the container's `lo` by the hook
/// before the resolver binds), and the container's resolv.conf names it. The "krun" is a
/// wrapper around runc: what is under test is the shield's side of the runtime.
#[test]
fn rootful_krun_runtime_gets_the_resolver_on_its_own_address() {
    let Some(e) = env() else { return };
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    h.file("bin/krun", "#!/bin/sh\nexec runc \"$@\"\n", 0o755);
    h.profile("lab", "+allowed.shield.test\n");
    let name = format!("tsh-krunres-{}", std::process::id());
    let krun = h.dir.join("bin/krun").display().to_string();
    let args = ["run", &name, "--profiles", "lab", "--", "-d", "--runtime", &krun, &e.image, "sleep", "600"];
    let out = h.shield_with_test_dns(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let read = |f: &str| std::fs::read_to_string(h.state_dir(&name).join(f)).unwrap_or_default();
    assert_eq!(
        (read("dns.tier"), read("resolv.conf")),
        ("resolver\n".into(), "nameserver 169.254.1.3\noptions ndots:0\n".into())
    );
    let lo = h.podman(&["exec", &name, "ip", "addr", "show", "lo"]).stdout;
    assert!(lo.contains("inet 169.254.1.3/32"), "{lo}");
    h.probe(&name, "krun resolver", &[("allowed.shield.test", true), ("unlisted.shield.test", false)]);
    let pid = container_pid(&h, &name);
    assert_eq!(ask(pid, "169.254.1.3", "unlisted.shield.test", RecordType::A).map(|r| r.0), Ok(ResponseCode::NXDomain));
    h.podman(&["rm", "-f", &name]);
}
