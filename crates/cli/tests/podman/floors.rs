//! The floors with real packets (issue 14.5): an address of each internal and metadata
//! range is refused with ICMP admin-prohibited in UP and in DOWN.
//!
//! No test host can stand at 168.63.129.16 or 100.100.100.200 (the machine may need the
//! real ones), so the packets never leave the container: inside its network namespace a
//! sink device (a veth whose peer is down) takes a /32 route to each address and drops
//! what it is given. A
//! connection there either fails at once with EHOSTUNREACH (EACCES over IPv6), which only the shield's
//! reject produces, or times out; DISENGAGED, which lifts the floors, is the control that
//! shows the timeout.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use super::harness::*;

/// One address per range of `policy::ranges` with a floor (the link-local and private test
/// hosts of the probes cover 169.254/16 and 10/8 with real hosts).
const INTERNAL: [&str; 8] = [
    "100.100.100.200",
    "168.63.129.16",
    "192.0.0.192",
    "100.64.0.1",
    "192.0.0.8",
    "172.16.0.1",
    "192.168.0.1",
    "fd00:ec2::254",
];

/// How a TCP connection from the namespace of `pid` to `addr:80` ends.
#[derive(Debug, PartialEq, Eq)]
enum Ends {
    Refused,
    TimedOut,
    Other(String),
}

fn connect_from(pid: u32, addr: &str) -> Ends {
    let to = SocketAddr::new(addr.parse::<IpAddr>().unwrap_or_else(|e| panic!("{addr}: {e}")), 80);
    std::thread::spawn(move || {
        enter_net_of(pid);
        match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(_) => Ends::Other("connected".into()),
            // ICMP admin-prohibited is EHOSTUNREACH; ICMPv6's is EACCES.
            Err(e)
                if e.raw_os_error() == Some(if to.is_ipv4() { nix::libc::EHOSTUNREACH } else { nix::libc::EACCES }) =>
            {
                Ends::Refused
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ends::TimedOut,
            Err(e) => Ends::Other(e.to_string()),
        }
    })
    .join()
    .unwrap_or_else(|_| panic!("connect thread"))
}

fn internal_ranges_are_refused(who: Who) {
    let Some((h, name)) = shielded(who, "floors", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let pid = container_pid(&h, &name);
    sink_routes(&pid.to_string(), &INTERNAL);
    for posture in [&["up"][..], &["down"][..], &["down", "--disengage"][..]] {
        if posture != ["up"] {
            let mut args = vec![posture[0], name.as_str()];
            args.extend(&posture[1..]);
            assert_eq!(h.shield(&args).code, 0, "{who:?} {posture:?}");
        }
        let want = if posture.len() == 2 { Ends::TimedOut } else { Ends::Refused };
        for a in INTERNAL {
            assert_eq!(connect_from(pid, a), want, "{who:?} {posture:?}: {a}");
        }
    }
    assert_eq!(h.shield(&["up", &name]).code, 0, "{who:?} up");
    // A deny the override tier would overrule is refused and changes nothing (issue 14.10).
    let sd = h.state_dir(&name);
    h.sh(&format!("printf '+10.222.222.0/24\\n' > {0}/policy/10-override", sd.display()));
    let live = std::fs::read(sd.join("policy/live")).unwrap_or_default();
    let out = h.shield(&["deny", &name, PRIVATE_V4]);
    assert_eq!(out.code, 1, "{who:?}: a deny under an override: {}", out.stderr);
    assert!(out.stderr.contains("overlaps the override 10.222.222.0/24"), "{who:?}: {}", out.stderr);
    assert_eq!(std::fs::read(sd.join("policy/live")).unwrap_or_default(), live, "{who:?}: policy/live changed");
    // An IPv4-mapped IPv6 deny is the IPv4 deny.
    let out = h.shield(&["deny", &name, &format!("::ffff:{ALLOWED_V4}")]);
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    h.probe(&name, &format!("{who:?} after a mapped deny"), &[(ALLOWED_V4, false)]);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_internal_ranges_are_refused() {
    internal_ranges_are_refused(Who::Root);
}

#[test]
fn rootless_internal_ranges_are_refused() {
    internal_ranges_are_refused(Who::User);
}

/// slirp4netns keeps the host's loopback closed (issue 14.8): with an override of
/// 10.0.0.0/8, which opens the private test host, nothing reaches a listener on the host's
/// 127.0.0.1 through the slirp gateway 10.0.2.2. Rootless only: rootful containers have no
/// slirp gateway.
#[test]
fn rootless_slirp_gateway_does_not_lead_to_host_loopback() {
    let Some((h, name)) = shielded(Who::User, "hostlo", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    let policy = h.state_dir(&name).join("policy/10-override");
    std::fs::write(&policy, "+10.0.0.0/8\n").unwrap_or_else(|e| panic!("{e}"));
    let _ = std::process::Command::new("chown")
        .arg(format!("{}:", env().map_or("", |e| e.user.as_str())))
        .arg(&policy)
        .status();
    let out = h.podman(&["restart", "-t", "0", &name]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The override is in force: the private test host answers.
    h.probe(&name, "override of 10/8", &[(PRIVATE_V4, true), (ALLOWED_V4, true)]);
    let tried =
        h.podman(&["exec", &name, "sh", "-c", &format!("echo hi | timeout 5 nc -w 3 10.0.2.2 {port}; echo rc=$?")]);
    assert!(listener.accept().is_err(), "the container reached the host's loopback: {}", tried.stdout);
    h.podman(&["rm", "-f", &name]);
}
