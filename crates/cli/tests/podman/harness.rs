//! The harness of the podman tests: the test environment, per-test homes run as root or
//! as the test user, probes, and helpers that act inside a container's namespaces.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub(crate) const ALLOWED_V4: &str = "198.51.100.10";

pub(crate) const ALLOWED_V6: &str = "2001:db8:100::10";

pub(crate) const UNLISTED_V4: &str = "198.51.100.11";

pub(crate) const UNLISTED_V6: &str = "2001:db8:100::11";

pub(crate) const PRIVATE_V4: &str = "10.222.222.10";

/// A link-local test host: the hard-deny floor, which only DISENGAGED lifts.
pub(crate) const LINK_LOCAL_V4: &str = "169.254.77.10";

/// The test environment, or `None` (with the reason printed) when it is not set up.
pub(crate) struct Env {
    pub(crate) vars: Vec<(String, String)>,
    pub(crate) user: String,
    pub(crate) image: String,
    pub(crate) bin: PathBuf,
}

pub(crate) fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/terok-shield-test/env").ok();
        let root = std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")));
        let (Some(text), true) = (text, root) else {
            let why = "needs root and tests/env/setup.sh";
            assert_ne!(std::env::var("TEROK_SHIELD_REQUIRE_NETNS").as_deref(), Ok("1"), "podman tests: {why}");
            eprintln!("SKIP podman tests: {why}");
            return None;
        };
        let vars: Vec<(String, String)> =
            text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        // Binaries the test user can execute.
        let bin = PathBuf::from(format!("/tmp/tsh-test-bin-{}", std::process::id()));
        std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{e}"));
        for name in ["terok-shield", "terok-shield-hook"] {
            let src = PathBuf::from(env!("CARGO_BIN_EXE_terok-shield")).with_file_name(name);
            std::fs::copy(&src, bin.join(name)).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        Some(Env { user: get("TEROK_SHIELD_TEST_USER"), image: get("TEROK_SHIELD_TEST_IMAGE"), vars, bin })
    })
    .as_ref()
}

pub(crate) struct Out {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) fn run(cmd: &mut Command) -> Out {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Who runs the commands: root (rootful podman) or the test user (rootless).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Who {
    Root,
    User,
}

/// A per-test home: state and config roots owned by whoever runs the test.
pub(crate) struct Home {
    pub(crate) who: Who,
    pub(crate) dir: PathBuf,
    pub(crate) _tmp: tempfile::TempDir,
    /// Rootful tests run one at a time: rootful containers share netavark's bridge, address
    /// allocation and NAT, and overlapping rootful tests intermittently lost an allowlisted
    /// host's replies under podman 4.3. Rootless tests (own slirp4netns stack each) overlap.
    pub(crate) _rootful: Option<std::sync::MutexGuard<'static, ()>>,
}

pub(crate) static ROOTFUL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Home {
    pub(crate) fn new(who: Who) -> Home {
        let tmp = tempfile::Builder::new().prefix("tsh-podman-").tempdir_in("/tmp").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().join("h");
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap_or_else(|e| panic!("{e}"));
        if who == Who::User {
            let e = env().unwrap_or_else(|| unreachable!());
            run(Command::new("chown").args([&format!("{}:", e.user), &dir.display().to_string()]));
        }
        let rootful = (who == Who::Root).then(|| ROOTFUL.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        Home { who, dir, _tmp: tmp, _rootful: rootful }
    }

    /// Write a (large) profile directly, owned by whoever runs the test.
    pub(crate) fn profile_file(&self, name: &str, text: &str) {
        let dir = self.dir.join("config/profiles");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join(format!("{name}.txt"));
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        if self.who == Who::User {
            let e = env().unwrap_or_else(|| unreachable!());
            run(Command::new("chown").args([
                "-R",
                &format!("{}:", e.user),
                &self.dir.join("config").display().to_string(),
            ]));
        }
    }

    /// Write `rel` under the home, owned by whoever runs the test.
    pub(crate) fn file(&self, rel: &str, text: &str, mode: u32) {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("{e}"));
        if self.who == Who::User {
            let e = env().unwrap_or_else(|| unreachable!());
            let top = rel.split('/').next().unwrap_or(rel);
            run(Command::new("chown").args(["-R", &format!("{}:", e.user), &self.dir.join(top).display().to_string()]));
        }
    }

    pub(crate) fn profile(&self, name: &str, text: &str) {
        let p = format!("config/profiles/{name}.txt");
        self.sh(&format!("mkdir -p config/profiles && printf '%s' '{text}' > {p}"));
    }

    /// A command as `who`, in the home dir, with the state/config roots set.
    pub(crate) fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let e = env().unwrap_or_else(|| unreachable!());
        let state = self.dir.join("state").display().to_string();
        let config = self.dir.join("config").display().to_string();
        let mut c = match self.who {
            Who::Root => {
                let mut c = Command::new(program);
                c.env_clear()
                    .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("HOME", "/root");
                for (k, v) in &e.vars {
                    c.env(k, v);
                }
                c.args(args);
                c
            }
            Who::User => {
                let uid = run(Command::new("id").args(["-u", &e.user])).stdout.trim().to_string();
                let mut c = Command::new("runuser");
                c.args([
                    "-u",
                    &e.user,
                    "--",
                    "env",
                    "-i",
                    &format!("HOME=/home/{}", e.user),
                    &format!("USER={}", e.user),
                ]);
                c.arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                    .arg(format!("XDG_RUNTIME_DIR=/run/user/{uid}"));
                c.arg(format!("TEROK_SHIELD_STATE_DIR={state}")).arg(format!("TEROK_SHIELD_CONFIG_DIR={config}"));
                c.arg(program).args(args);
                c
            }
        };
        c.env("TEROK_SHIELD_STATE_DIR", &state).env("TEROK_SHIELD_CONFIG_DIR", &config).current_dir(&self.dir);
        c
    }

    pub(crate) fn sh(&self, script: &str) -> Out {
        let out = run(&mut self.cmd("sh", &["-c", script]));
        assert_eq!(out.code, 0, "{script}: {}", out.stderr);
        out
    }

    pub(crate) fn shield(&self, args: &[&str]) -> Out {
        let e = env().unwrap_or_else(|| unreachable!());
        run(&mut self.cmd(&e.bin.join("terok-shield").display().to_string(), args))
    }

    /// `terok-shield` with the test DNS server as the host's resolver ([`with_test_dns`]).
    pub(crate) fn shield_with_test_dns(&self, args: &[&str]) -> Out {
        let e = env().unwrap_or_else(|| unreachable!());
        run(&mut with_test_dns(&self.cmd(&e.bin.join("terok-shield").display().to_string(), args)))
    }

    pub(crate) fn podman(&self, args: &[&str]) -> Out {
        run(&mut self.cmd("podman", args))
    }

    /// Probe `want`'s hosts from inside `container` and check the outcome.
    pub(crate) fn probe(&self, container: &str, what: &str, want: &[(&str, bool)]) {
        let stdout = settle(want, |hs| {
            let mut args = vec!["exec", container, "sh", "-c", PROBE, "probe"];
            args.extend(hs);
            self.podman(&args).stdout
        });
        expect(&stdout, want, what);
    }

    /// Probe `hosts` from inside `container`: each must go unanswered, dropped rather than
    /// refused (QUARANTINE's drop-and-timeout check).
    pub(crate) fn probe_dropped(&self, container: &str, what: &str, hosts: &[&str]) {
        let mut args = vec!["exec", container, "sh", "-c", PROBE, "probe"];
        args.extend(hosts);
        let stdout = self.podman(&args).stdout;
        let got: Vec<(String, Outcome)> =
            stdout.lines().filter_map(|l| l.split_once(' ')).map(|(h, r)| (h.to_string(), outcome(h, r))).collect();
        let want: Vec<(String, Outcome)> = hosts.iter().map(|h| (h.to_string(), Outcome::Dropped)).collect();
        assert_eq!(got, want, "{what}: {stdout}");
    }

    pub(crate) fn state_dir(&self, container: &str) -> PathBuf {
        self.dir.join("state/containers").join(container)
    }
}

/// Setup once per test binary and user (a concurrent second setup would fail on the lock).
pub(crate) fn ensure_setup(who: Who) {
    static ROOT: OnceLock<()> = OnceLock::new();
    static USER: OnceLock<()> = OnceLock::new();
    let once = if who == Who::Root { &ROOT } else { &USER };
    once.get_or_init(|| {
        let h = Home::new(who);
        let out = h.shield(&["setup"]);
        assert_eq!(out.code, 0, "setup as {who:?}: {}", out.stderr);
        let status = h.shield(&["status"]);
        assert!(status.stdout.contains("Hooks:    global\nHealth:   ok"), "{who:?}: {}", status.stdout);
    });
}

/// One line per host: `<host> ok` or `<host> fail <why>`. Waits up to 3 s for an IPv6
/// default route first (slirp4netns configures IPv6 by router advertisement).
pub(crate) const PROBE: &str = r#"i=0; while [ $i -lt 30 ] && ! ip -6 route | grep -q default; do sleep 0.1; i=$((i+1)); done; for h in "$@"; do r=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 "$h" 80 2>&1 | tail -n 1); if [ "$r" = tshield-ok ]; then echo "$h ok"; else echo "$h fail $r"; fi; done"#;

/// How a probe of one host ended, from PROBE's line (busybox nc's own error text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The test host's own page came back.
    Reached,
    /// The shield's ICMP admin-prohibited: EHOSTUNREACH over IPv4, EACCES over IPv6.
    Rejected,
    /// The name did not resolve (the shield's resolver answers refused names NXDOMAIN).
    Unresolved,
    /// No answer at all (QUARANTINE drops).
    Dropped,
    /// Anything else: a missing route, a broken test network, a reset.
    Other,
}

pub(crate) fn outcome(host: &str, rest: &str) -> Outcome {
    if rest.starts_with("ok") {
        Outcome::Reached
    } else if rest.contains("No route to host") || rest.contains("Permission denied") {
        Outcome::Rejected
    } else if rest.contains("bad address") && host.parse::<std::net::IpAddr>().is_err() {
        Outcome::Unresolved
    } else if rest.contains("timed out") {
        Outcome::Dropped
    } else {
        Outcome::Other
    }
}

/// Each host's verdict: true when it answered, false when the shield refused it (rejected,
/// or a name its resolver refused). Any other failure is neither, so a probe can never
/// pass by a timeout or a broken test network.
pub(crate) fn verdicts(stdout: &str) -> Vec<(String, Option<bool>)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(h, r)| {
            let v = match outcome(h, r) {
                Outcome::Reached => Some(true),
                Outcome::Rejected | Outcome::Unresolved => Some(false),
                Outcome::Dropped | Outcome::Other => None,
            };
            (h.to_string(), v)
        })
        .collect()
}

/// Probe `want`'s hosts with `probe` (which returns PROBE's output); a host expected to
/// answer that did not is probed up to twice more, a second apart: rootful traffic crosses
/// the host's NAT, which netavark rewrites whenever a parallel test starts or stops a
/// container. Hosts expected to be refused are never retried, so no refusal is ever masked.
pub(crate) fn settle(want: &[(&str, bool)], mut probe: impl FnMut(&[&str]) -> String) -> String {
    let hosts: Vec<&str> = want.iter().map(|(h, _)| *h).collect();
    let mut got: Vec<(String, bool, String)> = probe(&hosts)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(h, r)| (h.to_string(), r.starts_with("ok"), r.to_string()))
        .collect();
    for _ in 0..2 {
        let again: Vec<&str> = want
            .iter()
            .filter(|(h, ok)| *ok && got.iter().any(|(g, gok, _)| g == h && !gok))
            .map(|(h, _)| *h)
            .collect();
        if again.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        for line in probe(&again).lines() {
            if let Some((h, r)) = line.split_once(' ') {
                if let Some(slot) = got.iter_mut().find(|(g, _, _)| g == h) {
                    *slot = (h.to_string(), r.starts_with("ok"), r.to_string());
                }
            }
        }
    }
    got.iter().map(|(h, _, r)| format!("{h} {r}\n")).collect()
}

pub(crate) fn expect(stdout: &str, want: &[(&str, bool)], what: &str) {
    let got = verdicts(stdout);
    let want: Vec<(String, Option<bool>)> = want.iter().map(|(h, ok)| (h.to_string(), Some(*ok))).collect();
    assert_eq!(got, want, "{what} (false: refused by the shield; None: neither answered nor refused): {stdout}");
}

/// A shielded container for `who`: profile `lab` allowing `allowlist`, started detached
/// with `workload`; `None` (skipped with a reason) when the test environment is missing.
pub(crate) fn shielded(who: Who, tag: &str, allowlist: &[&str], workload: &[&str]) -> Option<(Home, String)> {
    start_shielded(who, tag, allowlist, workload, false, None)
}

/// Like [`shielded`]; with `test_dns`, `run` (and so podman, slirp4netns and the upstream
/// that prepare records) sees the test DNS server as the host's resolver.
pub(crate) fn start_shielded(
    who: Who,
    tag: &str,
    allowlist: &[&str],
    workload: &[&str],
    test_dns: bool,
    config_yml: Option<&str>,
) -> Option<(Home, String)> {
    let e = env()?;
    ensure_setup(who);
    let h = Home::new(who);
    if let Some(text) = config_yml {
        h.file("config/config.yml", text, 0o600);
    }
    h.profile("lab", &allowlist.iter().map(|a| format!("+{a}\n")).collect::<String>());
    let name = format!("tsh-{tag}-{}-{:?}", std::process::id(), who).to_lowercase();
    let mut args = vec!["run", name.as_str(), "--profiles", "lab", "--", "-d", e.image.as_str()];
    args.extend(workload);
    let out = if test_dns { h.shield_with_test_dns(&args) } else { h.shield(&args) };
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    Some((h, name))
}

pub(crate) fn shielded_probe(who: Who, want: &[(&str, bool)]) {
    let allowlist: Vec<&str> = want.iter().filter(|(_, ok)| *ok).map(|(a, _)| *a).collect();
    let Some((h, name)) = shielded(who, "probe", &allowlist, &["sleep", "600"]) else { return };
    h.probe(&name, &format!("{who:?}"), want);
    h.podman(&["rm", "-f", &name]);
}

/// Every file of a bundle with its content (for "nothing changed" checks).
pub(crate) fn bundle_snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = Vec::new();
    for sub in ["", "policy"] {
        let d = dir.join(sub);
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten().filter(|e| e.path().is_file()) {
                v.push((
                    format!("{sub}/{}", e.file_name().to_string_lossy()),
                    std::fs::read(e.path()).unwrap_or_default(),
                ));
            }
        }
    }
    v.sort();
    v
}

/// config.yml that picks the dnsmasq mode that follows answers (the default is the shield's
/// own resolver).
pub(crate) const DNSMASQ_LIVE: &str = "dns:\n  tier: dnsmasq-live\n";
/// config.yml that lets the host's tools decide the DNS mode, as before the resolver.
pub(crate) const AUTO_TIER: &str = "dns:\n  tier: auto\n";

pub(crate) const DENIED_V4: &str = "198.51.100.12";

/// `cmd` run in a private mount namespace whose /etc/resolv.conf names the test DNS server
/// (tests/env/setup.sh), so host-side name resolution stays on this machine.
pub(crate) fn with_test_dns(cmd: &Command) -> Command {
    with_test_files(cmd, None, None)
}

/// [`with_test_dns`], with `resolv` instead of the test server's resolv.conf and `hosts` as
/// the host's /etc/hosts.
pub(crate) fn with_test_files(
    cmd: &Command,
    resolv: Option<&std::path::Path>,
    hosts: Option<&std::path::Path>,
) -> Command {
    let resolv = resolv.map_or_else(|| "/run/tshield-hosts/resolv.conf".to_string(), |r| r.display().to_string());
    let mut script = format!("mount --bind {resolv} /etc/resolv.conf");
    if let Some(h) = hosts {
        script.push_str(&format!(" && mount --bind {} /etc/hosts", h.display()));
    }
    let mut c = Command::new("unshare");
    c.args(["-m", "sh", "-c", &format!("{script} && exec \"$@\""), "sh"]);
    c.arg(cmd.get_program()).args(cmd.get_args());
    c.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    c
}

/// A name for this test alone in the test DNS server (tests/env/setup.sh reads
/// /run/tshield-hosts/dns-hosts/ on every change), pointed at `addr`; written by rename so
/// the server never reads half a file.
pub(crate) fn test_name(name: &str, addr: &str) {
    let dir = std::path::Path::new("/run/tshield-hosts/dns-hosts");
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, format!("{addr} {name}\n")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
    // The server reads it on inotify; wait until it answers with the new address.
    for _ in 0..50 {
        let out = run(Command::new("dig").args(["+short", "+time=1", "+tries=1", "@198.51.100.53", name, "A"]));
        if out.stdout.trim() == addr {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the test DNS server does not answer {name} with {addr}");
}

/// Validate `items` against `schema/<name>.v1.json` (JSON Schema 2020-12).
pub(crate) fn check_schema(name: &str, items: &[serde_json::Value]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../schema/{name}.v1.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource("mem://schema.json", schema).unwrap_or_else(|e| panic!("{e}"));
    let index = compiler.compile("mem://schema.json", &mut schemas).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!items.is_empty(), "{name}: nothing to check");
    for item in items {
        if let Err(e) = schemas.validate(item, index) {
            panic!("{name}: {item} does not match the schema: {e}");
        }
    }
}

/// Signal a command started by [`Home::cmd`]: the program itself, also when `runuser`
/// started it (runuser does not pass signals on).
pub(crate) fn terminate(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap_or_default();
    let target = children.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(child.id() as i32);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(target), sig);
}

/// Move this thread into the network namespace of process `pid`.
pub(crate) fn enter_net_of(pid: u32) {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap_or_else(|e| panic!("netns of {pid}: {e}"));
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {pid}: {e}"));
}

/// One DNS query (type A) for the name made of `labels`, sent to the container's dnsmasq
/// (127.0.0.1:53) from inside the network namespace of process `pid`.
pub(crate) fn dns_query_from(pid: &str, labels: &[&[u8]]) {
    let pid: u32 = pid.trim().parse().unwrap_or_else(|e| panic!("pid {pid:?}: {e}"));
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in labels {
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    std::thread::spawn(move || {
        enter_net_of(pid);
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        sock.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap_or_else(|e| panic!("{e}"));
        sock.send_to(&q, "127.0.0.1:53").unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 512];
        let _ = sock.recv(&mut buf);
    })
    .join()
    .unwrap_or_else(|_| panic!("query thread"));
}

/// `count` UDP datagrams to `dest:port`, sent from inside the network namespace of process
/// `pid` (a thread of this test enters it), as fast as they go. Each is refused by the
/// container's firewall; send errors are expected and ignored.
pub(crate) fn flood_from(pid: &str, dest: &str, port: u16, count: usize) -> std::time::Duration {
    let pid: u32 = pid.trim().parse().unwrap_or_else(|e| panic!("pid {pid:?}: {e}"));
    let dest: std::net::SocketAddr = format!("{dest}:{port}").parse().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        enter_net_of(pid);
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| panic!("{e}"));
        let start = std::time::Instant::now();
        for _ in 0..count {
            let _ = sock.send_to(b"x", dest);
        }
        start.elapsed()
    })
    .join()
    .unwrap_or_else(|_| panic!("flood thread"))
}

/// The `blocked` rows of an audit log.
pub(crate) fn blocked_rows(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["action"] == "blocked")
        .collect()
}

/// The pid of `name`'s first process, from podman.
pub(crate) fn container_pid(h: &Home, name: &str) -> u32 {
    let pid = h.podman(&["inspect", "--format", "{{.State.Pid}}", name]).stdout;
    pid.trim().parse().unwrap_or_else(|e| panic!("pid {pid:?}: {e}"))
}

/// Route `nets` inside the network namespace of process `pid` to a sink: a veth whose peer
/// stays down drops what it is given, and with ARP off nothing waits for a neighbour (no
/// dummy driver on every kernel). What the shield lets through to them goes nowhere.
pub(crate) fn sink_routes(pid: &str, nets: &[&str]) {
    let mut script =
        "ip link add tsh-sink type veth peer name tsh-sink-p && ip link set tsh-sink arp off up".to_string();
    for n in nets {
        let prefix = if n.contains('/') {
            String::new()
        } else if n.contains(':') {
            "/128".into()
        } else {
            "/32".into()
        };
        script.push_str(&format!(" && ip route add {n}{prefix} dev tsh-sink"));
    }
    let out = run(Command::new("nsenter").args(["-t", pid, "-n", "sh", "-c", &script]));
    assert_eq!(out.code, 0, "{script}: {}", out.stderr);
}

/// `nft args` inside the network namespace of process `pid` (from the host).
pub(crate) fn nft_in(pid: &str, args: &[&str]) -> Out {
    run(Command::new("nsenter").args(["-t", pid, "-n", "nft"]).args(args))
}

/// Wait up to `limit` for `f` to hold.
pub(crate) fn within(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A stand-in clearance hub listening where the reader of container `id` sends events.
pub(crate) struct Hub {
    dir: PathBuf,
    lines: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl Hub {
    pub(crate) fn listen(who: Who, id: &str) -> Hub {
        let e = env().unwrap_or_else(|| unreachable!());
        let uid: u32 = match who {
            Who::Root => 0,
            Who::User => run(Command::new("id").args(["-u", &e.user])).stdout.trim().parse().unwrap_or(0),
        };
        let dir = PathBuf::from(format!("/run/user/{uid}/terok/events/{}", &id[..12]));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let sock = dir.join("ingester.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap_or_else(|e| panic!("{e}"));
        for p in [dir.parent().and_then(|p| p.parent()).unwrap_or(&dir), dir.parent().unwrap_or(&dir), &dir, &sock] {
            let _ = nix::unistd::chown(p, Some(nix::unistd::Uid::from_raw(uid)), None);
        }
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    use std::io::BufRead;
                    for line in std::io::BufReader::new(conn).lines().map_while(Result::ok) {
                        let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("hub got {line:?}: {e}"));
                        sink.lock().unwrap_or_else(|p| p.into_inner()).push(v);
                    }
                });
            }
        });
        Hub { dir, lines }
    }

    pub(crate) fn wait_for(&self, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let mut found = None;
        within(std::time::Duration::from_secs(5), || {
            found = self.lines.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|v| f(v)).cloned();
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!("the hub got no {what}: {:?}", self.lines.lock().unwrap_or_else(|p| p.into_inner()))
        })
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The probe's verdicts from busybox nc's own messages: only the shield's refusal counts as
/// refused (no podman needed).
#[test]
fn only_the_shields_refusal_counts_as_refused() {
    let out = "198.51.100.10 ok\n\
               198.51.100.11 fail nc: can't connect to remote host (198.51.100.11): No route to host\n\
               2001:db8:100::11 fail nc: can't connect to remote host: Permission denied\n\
               unlisted.shield.test fail nc: bad address 'unlisted.shield.test'\n\
               198.51.100.12 fail nc: timed out\n\
               198.51.100.13 fail nc: can't connect to remote host (198.51.100.13): Network is unreachable\n\
               198.51.100.14 fail nc: bad address '198.51.100.14'\n";
    let got: Vec<Option<bool>> = verdicts(out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, [Some(true), Some(false), Some(false), Some(false), None, None, None]);
    assert_eq!(outcome("198.51.100.12", "fail nc: timed out"), Outcome::Dropped);
}
