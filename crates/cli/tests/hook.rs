//! The hook binary against a real kernel: a process sleeping in a throwaway network
//! namespace stands in for the container, the hook gets real OCI state on stdin, and real
//! packets prove what it loaded. Every fail-closed case leaves no table behind.

#[path = "../../shield/tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use support::{can_run, Lab, Probe};
use support::{HOST_ALLOWED_V4, HOST_ALLOWED_V6, HOST_DENIED_V4, HOST_PRIVATE_V4, HOST_UNLISTED_V4, HOST_UNLISTED_V6};
use terok_shield_ruleset::{ruleset_nft, NetFacts, Seeds};

/// A stand-in container: `sleep` in the lab's client namespace.
struct Sleeper(Child);

impl Sleeper {
    fn new(lab: &Lab) -> Sleeper {
        Sleeper(lab.client.cmd("sleep").arg("120").spawn().unwrap_or_else(|e| panic!("{e}")))
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bundle as prepare would write it, with the given authored project allowlist.
fn bundle(root: &Path, name: &str, project: &str, live: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("policy")).unwrap_or_else(|e| panic!("{e}"));
    for d in [&dir, &dir.join("policy")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(dir.join("policy/40-project-allow"), project).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("policy/live"), live).unwrap_or_else(|e| panic!("{e}"));
    let facts = NetFacts { dns: Some("198.18.1.2".parse().unwrap_or_else(|e| panic!("{e}"))), ..NetFacts::pasta() };
    std::fs::write(dir.join("ruleset.nft"), ruleset_nft(&facts, &Seeds::default())).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// A container's own OCI configuration as podman writes it: default capabilities, its own
/// network namespace.
const SAFE_CONFIG: &str = r#"{"ociVersion":"1.0.2","process":{"capabilities":{"bounding":["CAP_CHOWN","CAP_KILL","CAP_NET_BIND_SERVICE"],"effective":["CAP_CHOWN"],"permitted":["CAP_CHOWN"]}},"linux":{"namespaces":[{"type":"pid"},{"type":"network"},{"type":"mount"}]}}"#;

fn oci_state(pid: u32, dir: &Path, version: &str) -> String {
    oci_state_with(pid, dir, version, "safe", Some(SAFE_CONFIG))
}

/// The OCI state of a container whose OCI bundle (next to the state dir, named by `tag`)
/// holds `config` as its config.json (none when `None`).
fn oci_state_with(pid: u32, dir: &Path, version: &str, tag: &str, config: Option<&str>) -> String {
    let oci = dir.with_extension(format!("{tag}.oci"));
    std::fs::create_dir_all(&oci).unwrap_or_else(|e| panic!("{e}"));
    if let Some(config) = config {
        std::fs::write(oci.join("config.json"), config).unwrap_or_else(|e| panic!("{e}"));
    }
    serde_json::json!({
        "ociVersion": "1.0.2", "id": "0123456789abcdef0123", "status": "created", "pid": pid, "bundle": oci,
        "annotations": {"terok.shield.state_dir": dir, "terok.shield.version": version, "terok.shield.profiles": ""}
    })
    .to_string()
}

fn hook(stdin: &str, path: Option<&str>) -> (i32, String) {
    let mut cmd = Command::cargo_bin("terok-shield-hook").unwrap_or_else(|e| panic!("{e}"));
    cmd.args(["nft", "createRuntime"]).env_clear().stdin(Stdio::piped()).stderr(Stdio::piped());
    if let Some(p) = path {
        cmd.env("PATH", p);
    } else {
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
    use std::io::Write;
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn table_exists(lab: &Lab) -> bool {
    lab.client.nft(&["list", "tables"]).contains("terok_shield")
}

#[test]
fn create_runtime_shields_the_container_and_keeps_the_live_overlay() {
    if !can_run("create_runtime_shields_the_container_and_keeps_the_live_overlay") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let project = format!("+{HOST_ALLOWED_V4}\n+{HOST_ALLOWED_V6}\n+{HOST_PRIVATE_V4}\n");
    let dir = bundle(tmp.path(), "web", &project, &format!("-{HOST_DENIED_V4}\n"));

    let lab = Lab::new();
    let container = Sleeper::new(&lab);
    let (code, err) = hook(&oci_state(container.pid(), &dir, "18"), None);
    assert_eq!(code, 0, "hook failed: {err}");
    assert_eq!(std::fs::read_to_string(dir.join("container.id")).unwrap_or_default(), "0123456789ab\n");
    assert_eq!(lab.probe(HOST_ALLOWED_V4, 3), Probe::Answered);
    assert_eq!(lab.probe(HOST_ALLOWED_V6, 3), Probe::Answered);
    for host in [HOST_UNLISTED_V4, HOST_UNLISTED_V6, HOST_PRIVATE_V4, HOST_DENIED_V4] {
        assert!(matches!(lab.probe(host, 3), Probe::Rejected(_)), "{host}");
    }
    drop(container);

    // While it ran the operator allowed one host and denied another: a restart (a new
    // container process, a fresh namespace) keeps both decisions.
    std::fs::write(dir.join("policy/live"), format!("-{HOST_DENIED_V4}\n+{HOST_UNLISTED_V4}\n-{HOST_ALLOWED_V6}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let lab = Lab::new();
    let container = Sleeper::new(&lab);
    let (code, err) = hook(&oci_state(container.pid(), &dir, "18"), None);
    assert_eq!(code, 0, "hook failed: {err}");
    assert_eq!(lab.probe(HOST_UNLISTED_V4, 3), Probe::Answered, "runtime allow survives the restart");
    assert!(matches!(lab.probe(HOST_ALLOWED_V6, 3), Probe::Rejected(_)), "runtime deny survives the restart");
    assert!(matches!(lab.probe(HOST_DENIED_V4, 3), Probe::Rejected(_)));
    assert_eq!(lab.probe(HOST_ALLOWED_V4, 3), Probe::Answered);
}

#[test]
fn every_failure_fails_closed() {
    if !can_run("every_failure_fails_closed") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let good = bundle(tmp.path(), "good", &format!("+{HOST_ALLOWED_V4}\n"), "");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&good, &link).unwrap_or_else(|e| panic!("{e}"));
    let foreign = bundle(tmp.path(), "foreign", "", "");
    std::os::unix::fs::chown(&foreign, Some(65534), None).unwrap_or_else(|e| panic!("{e}"));
    let writable = bundle(tmp.path(), "writable", "", "");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o770)).unwrap_or_else(|e| panic!("{e}"));
    let corrupt = bundle(tmp.path(), "corrupt", "", "");
    let text = std::fs::read_to_string(corrupt.join("ruleset.nft")).unwrap_or_default();
    std::fs::write(
        corrupt.join("ruleset.nft"),
        text.replace("policy drop;\n        oifname", "policy accept;\n        oifname"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let truncated = bundle(tmp.path(), "truncated", "", "");
    std::fs::write(truncated.join("ruleset.nft"), &text[..text.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
    let injected = bundle(tmp.path(), "injected", "", "");
    std::fs::write(injected.join("ruleset.nft"), format!("{text}flush ruleset\n")).unwrap_or_else(|e| panic!("{e}"));
    let bad_policy = bundle(tmp.path(), "badpolicy", "+1.2.3\n", "");
    let no_ruleset = bundle(tmp.path(), "noruleset", "", "");
    std::fs::remove_file(no_ruleset.join("ruleset.nft")).unwrap_or_else(|e| panic!("{e}"));

    let lab = Lab::new();
    let container = Sleeper::new(&lab);
    let pid = container.pid();
    let relative = serde_json::json!({"pid": pid, "annotations": {"terok.shield.state_dir": "rel/dir", "terok.shield.version": "18"}}).to_string();
    let no_pid =
        serde_json::json!({"annotations": {"terok.shield.state_dir": good, "terok.shield.version": "18"}}).to_string();
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        ("not JSON", "{not json".into(), None, "bad OCI state"),
        ("not an object", "[1]".into(), None, "bad OCI state"),
        ("relative state dir", relative, None, "not absolute"),
        ("symlinked state dir", oci_state(pid, &link, "18"), None, "is a symlink"),
        ("foreign-owned state dir", oci_state(pid, &foreign, "18"), None, "is owned by uid 65534"),
        ("group-writable state dir", oci_state(pid, &writable, "18"), None, "group- or world-writable"),
        ("wrong version", oci_state(pid, &good, "17"), None, "bundle version '17'"),
        ("missing pid", no_pid, None, "no pid"),
        ("missing ruleset", oci_state(pid, &no_ruleset, "18"), None, "cannot read"),
        ("tampered ruleset", oci_state(pid, &corrupt, "18"), None, "verification failed"),
        ("truncated ruleset", oci_state(pid, &truncated, "18"), None, "corrupted"),
        ("injected statement", oci_state(pid, &injected, "18"), None, "corrupted"),
        ("bad policy line", oci_state(pid, &bad_policy, "18"), None, "line 1: Invalid IP/CIDR: '1.2.3'"),
        ("nft missing", oci_state(pid, &good, "18"), Some("/nonexistent"), "nft not found"),
        (
            "CAP_NET_RAW in the bounding set",
            oci_state_with(pid, &good, "18", "raw", Some(&SAFE_CONFIG.replace("\"CAP_KILL\"", "\"CAP_NET_RAW\""))),
            None,
            "would hold CAP_NET_RAW (bounding)",
        ),
        (
            "CAP_NET_ADMIN in every set (--privileged)",
            oci_state_with(pid, &good, "18", "priv", Some(&SAFE_CONFIG.replace("CAP_CHOWN", "CAP_NET_ADMIN"))),
            None,
            "would hold CAP_NET_ADMIN (effective, permitted, bounding)",
        ),
        (
            "the host's network namespace",
            oci_state_with(pid, &good, "18", "hostnet", Some(&SAFE_CONFIG.replace("{\"type\":\"network\"},", ""))),
            None,
            "no network namespace of its own",
        ),
        ("no config.json", oci_state_with(pid, &good, "18", "noconfig", None), None, "cannot read the container's"),
        (
            "no OCI bundle",
            oci_state(pid, &good, "18").replace("\"bundle\":", "\"bundle_\":"),
            None,
            "no absolute bundle",
        ),
    ];
    for (what, stdin, path, expect) in cases {
        let (code, err) = hook(&stdin, path);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains(expect), "{what}: {err}");
        assert!(err.starts_with("terok-shield hook: "), "{what}: {err}");
        if what == "tampered ruleset" {
            // The table loaded and failed verification: the hook replaced it with the
            // quarantine table before refusing the start.
            let listing = lab.client.nft(&["list", "table", "inet", "terok_shield"]);
            assert_eq!(terok_shield_ruleset::classify(&listing), terok_shield_ruleset::ShieldState::Quarantine);
            lab.client.nft(&["delete", "table", "inet", "terok_shield"]);
        }
        assert!(!table_exists(&lab), "{what} left a table behind");
    }
    let log = std::fs::read_to_string(good.join("hook-error.log")).unwrap_or_default();
    assert!(log.contains("bundle version '17'"), "diagnostics reach hook-error.log: {log}");
}

#[test]
fn a_hundred_thousand_entry_allowlist_loads_through_the_hook() {
    if !can_run("a_hundred_thousand_entry_allowlist_loads_through_the_hook") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut project = String::with_capacity(100_000 * 14);
    for i in 0..100_000u32 {
        project.push_str(&format!("+{}\n", std::net::Ipv4Addr::from(0x0B00_0000 + i * 3)));
    }
    project.push_str(&format!("+{HOST_ALLOWED_V4}\n"));
    let dir = bundle(tmp.path(), "big", &project, "");
    let lab = Lab::new();
    let container = Sleeper::new(&lab);
    let (code, err) = hook(&oci_state(container.pid(), &dir, "18"), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lab.probe(HOST_ALLOWED_V4, 3), Probe::Answered);
    assert!(matches!(lab.probe(HOST_UNLISTED_V4, 3), Probe::Rejected(_)));
}

/// What the issue measured: 100 000 entries of which half are networks (IPv6 /64 and
/// /112, IPv4 /29), with and without a port on every entry. The hook loads them all over
/// netlink (the port-scoped ones into the project tier's port maps); each set holds what it
/// should, the allowed host answers on its port only.
#[test]
fn a_hundred_thousand_entries_half_networks_with_ports_load_through_the_hook() {
    if !can_run("a_hundred_thousand_entries_half_networks_with_ports_load_through_the_hook") {
        return;
    }
    for ports in ["", ":443"] {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let project = mixed_allowlist(100_000, ports);
        let dir = bundle(tmp.path(), "mixed", &format!("{project}+{HOST_ALLOWED_V4}:80\n"), "");
        let lab = Lab::new();
        let container = Sleeper::new(&lab);
        let (code, err) = hook(&oci_state(container.pid(), &dir, "18"), None);
        assert_eq!(code, 0, "{ports:?}: {err}");
        assert_eq!(lab.probe(HOST_ALLOWED_V4, 3), Probe::Answered, "{ports:?}");
        assert!(matches!(lab.probe_port(HOST_ALLOWED_V4, support::OTHER_PORT, 3), Probe::Rejected(_)), "{ports:?}");
        assert!(matches!(lab.probe(HOST_UNLISTED_V4, 3), Probe::Rejected(_)), "{ports:?}");
        // Elements of a set's listing that contain `marker` (they are separated by commas).
        let count = |set: &str, marker: &str| {
            let kind = if set.contains("_portmap_") || set.contains("_porthost_") { "map" } else { "set" };
            let out = lab.client.nft(&["list", kind, "inet", "terok_shield", set]);
            let body = out.split("elements = {").nth(1).unwrap_or_default();
            body.split(',').filter(|e| e.contains(marker)).count()
        };
        if ports.is_empty() {
            assert_eq!(count("t40_project_allow_net_v4", "/29"), 25_000);
            assert_eq!(count("t40_project_allow_net_v6", "/64") + count("t40_project_allow_net_v6", "/112"), 25_000);
            assert_eq!(count("t40_project_allow_v4", "11."), 25_000);
            assert_eq!(count("t40_project_allow_v6", "2001:db8:"), 25_000);
        } else {
            // Every network is a range of the port map, every address an element of the
            // address map, all with the scope id of tcp 443 (the second: the allowed host's
            // tcp 80 sorts first).
            assert_eq!(count("t40_project_allow_portmap_v4", "/29 : 0x5e400002"), 25_000);
            assert_eq!(count("t40_project_allow_portmap_v6", ": 0x5e400002"), 25_000);
            assert_eq!(count("t40_project_allow_porthost_v4", "11."), 25_000);
            assert_eq!(count("t40_project_allow_porthost_v6", ": 0x5e400002"), 25_000);
            assert_eq!(count("t40_project_allow_scopes", "0x5e400002 . tcp . 443"), 1);
            assert_eq!(count("t40_project_allow_scopes", " . "), 2);
        }
    }
}

/// `n` allowlist lines, `suffix` after each host: a quarter IPv4 addresses, a quarter IPv4
/// /29s, a quarter IPv6 addresses, a quarter IPv6 /64s and /112s (alternating). Every
/// network is disjoint from the others and from the addresses, and none is adjacent to
/// another (adjacent networks of one scope join in a port map). `bench/start_overhead.py`
/// writes the same list.
pub fn mixed_allowlist(n: u32, suffix: &str) -> String {
    let mut out = String::with_capacity(n as usize * 32);
    for i in 0..n {
        let k = i / 4;
        let line = match i % 4 {
            0 => format!("+{}{suffix}\n", std::net::Ipv4Addr::from(0x0B00_0000 + k * 8)),
            1 => format!("+{}/29{suffix}\n", std::net::Ipv4Addr::from(0x0C00_0000 + k * 16)),
            2 => format!(
                "+[{}]{suffix}\n",
                std::net::Ipv6Addr::from((0x2001_0db8_0001_u128 << 80) | (u128::from(k) * 2))
            ),
            _ if k % 2 == 0 => format!(
                "+[{}/64]{suffix}\n",
                std::net::Ipv6Addr::from(0x2001_0db8_0002_u128 << 80 | u128::from(k) << 64)
            ),
            _ => format!(
                "+[{}/112]{suffix}\n",
                std::net::Ipv6Addr::from(0x2001_0db8_0003_u128 << 80 | u128::from(k) << 16)
            ),
        };
        out.push_str(&line);
    }
    out
}

/// The bridge hook is soft: whatever goes wrong, it exits 0 and the start goes on.
#[test]
fn the_bridge_hook_never_blocks_a_start() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cases = [
        "{not json".to_string(),
        "[]".to_string(),
        serde_json::json!({"annotations": {"terok.shield.state_dir": "relative"}}).to_string(),
        serde_json::json!({"annotations": {"terok.shield.state_dir": tmp.path().join("absent")}}).to_string(),
    ];
    for stage in ["createRuntime", "poststop", "bogus"] {
        for stdin in &cases {
            let mut cmd = Command::cargo_bin("terok-shield-hook").unwrap_or_else(|e| panic!("{e}"));
            cmd.args(["bridge", stage]).stdin(Stdio::piped()).stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{e}"));
            use std::io::Write;
            if let Some(mut s) = child.stdin.take() {
                let _ = s.write_all(stdin.as_bytes());
            }
            let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out.status.code(), Some(0), "{stage} {stdin}");
            assert!(
                String::from_utf8_lossy(&out.stderr).starts_with("terok-shield bridge hook: "),
                "{stage} {stdin}: a logged reason"
            );
        }
    }
    // And with a valid state dir it records dossier.meta_path.
    let dir = bundle(tmp.path(), "ok", "", "");
    let state = serde_json::json!({"id": "abc", "pid": 1, "annotations": {"terok.shield.state_dir": dir, "dossier.meta_path": "/srv/meta.json"}}).to_string();
    let mut cmd = Command::cargo_bin("terok-shield-hook").unwrap_or_else(|e| panic!("{e}"));
    let mut child =
        cmd.args(["bridge", "createRuntime"]).stdin(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{e}"));
    use std::io::Write;
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(state.as_bytes());
    }
    assert_eq!(child.wait().ok().and_then(|s| s.code()), Some(0));
    assert_eq!(std::fs::read_to_string(dir.join("meta_path")).unwrap_or_default(), "/srv/meta.json");
}
