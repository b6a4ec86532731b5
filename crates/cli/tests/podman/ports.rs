//! Port- and protocol-scoped rules on real containers: an address allowed on one port is
//! refused by the shield on the others and for the other protocol; live allow and deny of a
//! port; a name allowed with a port opens only that port on what it resolves to.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use super::harness::*;
use super::streams::{Stream, UdpEcho};

/// The echo server every test host runs (tests/env/setup.sh).
const ECHO: u16 = 7000;

/// What a TCP connect from the namespace of `pid` to `dest:port` gives: `Ok` when it
/// connected, else the OS error number (EHOSTUNREACH or EACCES: the shield's ICMP
/// admin-prohibited, over IPv4 or IPv6).
fn connect(pid: u32, dest: &str, port: u16) -> Result<(), i32> {
    let to = SocketAddr::new(dest.parse().unwrap_or_else(|e| panic!("{dest}: {e}")), port);
    std::thread::spawn(move || {
        enter_net_of(pid);
        TcpStream::connect_timeout(&to, Duration::from_secs(3)).map(|_| ()).map_err(|e| e.raw_os_error().unwrap_or(-1))
    })
    .join()
    .unwrap_or_else(|_| panic!("connect thread"))
}

/// The shield's refusal, and nothing else (a timeout, a reset or a missing route fail).
fn refused(pid: u32, dest: &str, port: u16, what: &str) {
    let want = if dest.contains(':') { nix::libc::EACCES } else { nix::libc::EHOSTUNREACH };
    assert_eq!(connect(pid, dest, port), Err(want), "{what}: {dest}:{port} must be refused by the shield");
}

/// One UDP datagram from the namespace of `pid` to `dest:port`: true when it was echoed.
fn udp_echoed(pid: u32, dest: &str, port: u16) -> bool {
    let to = SocketAddr::new(dest.parse().unwrap_or_else(|e| panic!("{dest}: {e}")), port);
    std::thread::spawn(move || {
        enter_net_of(pid);
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| panic!("{e}"));
        sock.connect(to).unwrap_or_else(|e| panic!("{e}"));
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 64];
        (0..4).any(|_| sock.send(b"ping").is_ok() && sock.recv(&mut buf).is_ok())
    })
    .join()
    .unwrap_or(false)
}

fn ports(who: Who) {
    let udp_port = 7100 + u16::from(who == Who::User);
    let _udp = UdpEcho::on_test_host(UNLISTED_V4, udp_port);
    let allow = [
        format!("{ALLOWED_V4}:80"),
        format!("[{ALLOWED_V6}]:80"),
        format!("{UNLISTED_V4}:{ECHO}"),
        format!("{UNLISTED_V4}:{udp_port}/udp"),
    ];
    let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
    let Some((h, name)) = shielded(who, "ports", &allow, &["sleep", "600"]) else { return };
    let pid = container_pid(&h, &name);
    let what = format!("{who:?}");
    // Port 80 answers on both families; the echo port of the same hosts is refused.
    h.probe(&name, &what, &[(ALLOWED_V4, true), (ALLOWED_V6, true), (UNLISTED_V4, false)]);
    refused(pid, ALLOWED_V4, ECHO, &what);
    refused(pid, ALLOWED_V6, ECHO, &what);
    // TCP-only and UDP-only: each opens its own protocol alone.
    assert_eq!(connect(pid, UNLISTED_V4, ECHO), Ok(()), "{what}: the TCP rule");
    assert!(udp_echoed(pid, UNLISTED_V4, udp_port), "{what}: the UDP rule");
    refused(pid, UNLISTED_V4, udp_port, &format!("{what}: TCP to the UDP-only port"));
    assert!(!udp_echoed(pid, ALLOWED_V4, udp_port), "{what}: UDP where only TCP 80 is allowed");

    // Live: allow one more port, then deny it; its open flow ends, port 80 stays.
    let target = format!("{ALLOWED_V4}:{ECHO}");
    let out = h.shield(&["allow", &name, &target]);
    assert_eq!(out.code, 0, "{what}: {}", out.stderr);
    let stream = Stream::tcp(pid, ALLOWED_V4, ECHO);
    assert!(stream.flows_within(Duration::from_secs(3)), "{what}: the live allow");
    let out = h.shield(&["deny", &name, &target]);
    assert_eq!(out.code, 0, "{what}: {}", out.stderr);
    assert!(!stream.flows_within(Duration::from_secs(2)), "{what}: the denied port's flow must end");
    refused(pid, ALLOWED_V4, ECHO, &format!("{what}: after the deny"));
    h.probe(&name, &format!("{what} after the port deny"), &[(ALLOWED_V4, true)]);
    let live = std::fs::read_to_string(h.state_dir(&name).join("policy/live")).unwrap_or_default();
    assert_eq!(live, format!("-{target}\n"), "{what}");
    let rules = h.shield(&["rules", &name]).stdout;
    assert!(rules.contains(&format!("{ALLOWED_V4} . tcp . {ECHO}")), "{what}: rules show the port:\n{rules}");
    let status = h.shield(&["status", &name]).stdout;
    assert_eq!(
        status,
        format!(
            "up\nports: -{target} +{ALLOWED_V4}:80 +[{ALLOWED_V6}]:80 +{UNLISTED_V4}:{ECHO} +{UNLISTED_V4}:{udp_port}/udp\n"
        ),
        "{what}"
    );

    // Bad ports: one line, exit 1, nothing changed.
    let sd = h.state_dir(&name);
    let before = bundle_snapshot(&sd);
    for bad in [
        "198.51.100.10:0",
        "198.51.100.10:90-80",
        "198.51.100.10:80/icmp",
        "[2001:db8::1]:0",
        "[2001:db8::1]80",
        "198.51.100.10:1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33",
    ] {
        let out = h.shield(&["allow", &name, bad]);
        assert_eq!((out.code, out.stderr.lines().count()), (1, 1), "{what} {bad}: {}", out.stderr);
    }
    assert_eq!(bundle_snapshot(&sd), before, "{what}: a refused change changed the bundle");

    // IPv6, live: a port of the v6 host opens, then closes again.
    let target6 = format!("[{ALLOWED_V6}]:{ECHO}");
    assert_eq!(h.shield(&["allow", &name, &target6]).code, 0, "{what}");
    assert_eq!(connect(pid, ALLOWED_V6, ECHO), Ok(()), "{what}: the live v6 allow");
    assert_eq!(h.shield(&["deny", &name, &target6]).code, 0, "{what}");
    refused(pid, ALLOWED_V6, ECHO, &format!("{what}: after the v6 deny"));

    // A restart keeps the scoped rules (they are seeded again from the policy files).
    assert_eq!(h.podman(&["restart", "-t", "0", &name]).code, 0);
    let pid = container_pid(&h, &name);
    h.probe(&name, &format!("{what} after restart"), &[(ALLOWED_V4, true), (UNLISTED_V4, false)]);
    refused(pid, ALLOWED_V4, ECHO, &format!("{what}: after restart"));
    refused(pid, ALLOWED_V6, ECHO, &format!("{what}: the v6 deny after restart"));
    assert_eq!(connect(pid, UNLISTED_V4, ECHO), Ok(()), "{what}: the TCP rule after restart");

    // DOWN accepts what UP refused but keeps the port deny; QUARANTINE drops even the
    // allowed port; UP brings the port rules back.
    assert_eq!(h.shield(&["down", &name]).code, 0, "{what}");
    h.probe(&name, &format!("{what} down"), &[(UNLISTED_V4, true)]);
    refused(pid, ALLOWED_V4, ECHO, &format!("{what}: the port deny holds in DOWN"));
    assert_eq!(h.shield(&["quarantine", &name]).code, 0, "{what}");
    h.probe_dropped(&name, &format!("{what} quarantine"), &[ALLOWED_V4]);
    assert_eq!(h.shield(&["up", &name]).code, 0, "{what}");
    h.probe(&name, &format!("{what} up again"), &[(ALLOWED_V4, true), (UNLISTED_V4, false)]);
    assert_eq!(connect(pid, UNLISTED_V4, ECHO), Ok(()), "{what}: the TCP rule after up");
    // The live deny now sits in the deny tier's port map (UP loaded it from the policy): a
    // live allow of the same port withdraws it there too, and a deny puts it back.
    refused(pid, ALLOWED_V4, ECHO, &format!("{what}: the deny after up"));
    assert_eq!(h.shield(&["allow", &name, &target]).code, 0, "{what}");
    assert_eq!(connect(pid, ALLOWED_V4, ECHO), Ok(()), "{what}: allowed again after up");
    assert_eq!(h.shield(&["deny", &name, &target]).code, 0, "{what}");
    refused(pid, ALLOWED_V4, ECHO, &format!("{what}: denied again"));
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn ports_rootful() {
    ports(Who::Root);
}

#[test]
fn ports_rootless() {
    ports(Who::User);
}

/// A name allowed with a port: the resolver pins each address it answers to that port.
fn name_with_port(who: Who) {
    let allow = [format!("allowed.shield.test:{ECHO}")];
    let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
    let Some((h, name)) = start_shielded(who, "nameport", &allow, &["sleep", "600"], true, None) else { return };
    let pid = container_pid(&h, &name);
    let what = format!("{who:?}");
    // The name resolves (the lookup pins its addresses), port 80 is refused.
    let looked = h.podman(&["exec", &name, "nslookup", "allowed.shield.test"]);
    assert!(looked.stdout.contains(ALLOWED_V4), "{what}: {} {}", looked.stdout, looked.stderr);
    h.probe(&name, &what, &[("allowed.shield.test", false)]);
    assert_eq!(connect(pid, ALLOWED_V4, ECHO), Ok(()), "{what}: the pinned port");
    refused(pid, ALLOWED_V4, 80, &what);
    assert_eq!(connect(pid, ALLOWED_V6, ECHO), Ok(()), "{what}: the pinned port, IPv6");
    refused(pid, ALLOWED_V6, 80, &what);
    let rules = h.shield(&["rules", &name]).stdout;
    assert!(rules.contains(&format!("{ALLOWED_V4} . tcp . {ECHO}")), "{what}: {rules}");
    // Pinned addresses survive a posture change, and so do their flows.
    let stream = Stream::tcp(pid, ALLOWED_V4, ECHO);
    assert!(stream.flows_within(Duration::from_secs(3)), "{what}: the pinned flow");
    assert_eq!(h.shield(&["down", &name]).code, 0, "{what}");
    assert_eq!(h.shield(&["up", &name]).code, 0, "{what}");
    assert!(stream.flows_within(Duration::from_secs(3)), "{what}: the pinned flow after down and up");
    assert_eq!(connect(pid, ALLOWED_V4, ECHO), Ok(()), "{what}: still pinned after down and up");
    refused(pid, ALLOWED_V4, 80, &format!("{what}: after down and up"));
    drop(stream);
    // Withdrawing the port: the addresses learned for the name go.
    let out = h.shield(&["deny", &name, allow[0]]);
    assert_eq!(out.code, 0, "{what}: {}", out.stderr);
    refused(pid, ALLOWED_V4, ECHO, &format!("{what}: after the withdrawal"));
    let out = h.shield(&["deny", &name, "allowed.shield.test:22"]);
    assert_eq!(out.code, 1, "{what}: a port no allow names: {}", out.stdout);
    let rules = h.shield(&["rules", &name]).stdout;
    assert!(!rules.contains(&format!(". tcp . {ECHO}")), "{what}: the pinned elements must be gone: {rules}");
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn name_with_port_rootful() {
    name_with_port(Who::Root);
}

#[test]
fn name_with_port_rootless() {
    name_with_port(Who::User);
}
