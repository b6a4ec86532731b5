//! The `terok-shield` binary, driven as a user would: exit codes, output contracts, and
//! one bad input of each kind, each shown to fail with one line and to change no file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

/// An isolated home: state, config and namespace roots under one temp dir.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")) }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(Path::new("/"))).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("terok-shield").unwrap_or_else(|e| panic!("{e}"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("TEROK_SHIELD_STATE_DIR", self.path("state"))
            .env("TEROK_SHIELD_CONFIG_DIR", self.path("config"))
            .env("TEROK_ROOT", self.path("terok"))
            .env("TEROK_CONFIG_FILE", self.path("none.yml"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("TEROK_SHIELD_SYSTEM_HOOKS_DIR", self.path("system-hooks"))
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Outcome {
        let out = self.cmd(args).output().unwrap_or_else(|e| panic!("{e}"));
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every file below the temp dir with its contents and modification time.
    fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let p = e.path();
                let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{e}"));
                if meta.is_dir() {
                    out.insert(p.clone(), (Vec::new(), meta.modified().unwrap_or(std::time::UNIX_EPOCH)));
                    walk(&p, out);
                } else {
                    out.insert(
                        p.clone(),
                        (std::fs::read(&p).unwrap_or_default(), meta.modified().unwrap_or(std::time::UNIX_EPOCH)),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), &mut out);
        out
    }
}

#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

#[test]
fn no_verb_prints_help_and_succeeds() {
    let o = Home::new().run(&[]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("Usage: terok-shield") && o.stdout.contains("preview"), "{}", o.stdout);
}

#[test]
fn version_prints_three_lines() {
    let o = Home::new().run(&["--version"]);
    assert_eq!(o.code, 0);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", o.stdout);
    assert_eq!(lines[0], format!("terok-shield {}", env!("CARGO_PKG_VERSION")));
    assert!(lines[1].starts_with("podman "));
    assert!(lines[2] == "nft found" || lines[2] == "nft not found");
}

#[test]
fn usage_errors_exit_2() {
    let h = Home::new();
    for args in
        [&["bogus"][..], &["preview", "--bogus"], &["preview", "--", "x"], &["logs", "-n", "x"], &["--state-dir"]]
    {
        let o = h.run(args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.starts_with("error: "), "{args:?}: {}", o.stderr);
    }
    let o = h.run(&["preview", "--", "x"]);
    assert!(o.stderr.contains("'--' separator is only supported by the 'run' subcommand"));
}

#[test]
fn preview_prints_each_posture() {
    let h = Home::new();
    for (args, label, policy) in [
        (&["preview"][..], "up", "policy drop"),
        (&["preview", "--down"], "down", "policy accept"),
        (&["preview", "--down", "--disengage"], "disengaged", "policy accept"),
    ] {
        let o = h.run(args);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(
            o.stdout.starts_with(&format!("# Ruleset preview ({label}):\ntable inet terok_shield {{\n")),
            "{}",
            o.stdout
        );
        assert!(o.stdout.contains(policy) && o.stdout.ends_with("}\n\n"));
    }
    let o = h.run(&["preview", "--disengage"]);
    assert_eq!((o.code, o.stderr.as_str()), (1, "Error: --disengage requires --down\n"));
}

#[test]
fn preview_of_a_policy_shows_its_seeds() {
    let h = Home::new();
    h.write("config/profiles/mine.txt", "+198.51.100.10\n+[2001:db8::10]:443\n+web.example\n");
    let o = h.run(&["preview", "--profiles", "mine", "--allow", "198.51.100.0/28", "--deny", "198.51.100.10"]);
    assert_eq!(o.code, 0, "{o:?}");
    // The port-scoped address goes to the project tier's address port map, its port to the
    // scope set.
    assert!(
        o.stdout.contains("add element inet terok_shield t40_project_allow_porthost_v6 { 2001:db8::10 : 0x5e400001 }"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("add element inet terok_shield t40_project_allow_scopes { 0x5e400001 . tcp . 443 }"));
    assert!(o.stdout.contains("add element inet terok_shield t40_project_allow_net_v4 { 198.51.100.0/28 }"));
    assert!(o.stdout.contains("add element inet terok_shield t20_security_deny_v4 { 198.51.100.10 }"));
    assert!(
        !o.stdout.contains("add element inet terok_shield t40_project_allow_v4 "),
        "a denied address is not seeded as allowed"
    );
    assert!(o.stdout.contains("# 1 domain(s) answered by the shield's resolver: web.example"), "{}", o.stdout);
    assert!(!o.stdout.contains("dport 53"), "the resolver's table lets no DNS out: {}", o.stdout);
    // Another DNS tier: names resolved at launch, DNS to the forwarder.
    h.write("config/config.yml", "dns:\n  tier: auto\n");
    let o = h.run(&["preview", "--profiles", "mine"]);
    assert!(o.stdout.contains("# 1 domain(s) resolved at launch: web.example"), "{}", o.stdout);
    assert!(o.stdout.contains("udp dport 53 ip daddr 169.254.1.1 accept"), "{}", o.stdout);
}

/// `terok-shield preview` output is accepted by `nft -c -f -` in a new network namespace.
#[test]
fn preview_output_is_accepted_by_nft() {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false);
    if !root || terok_shield::tools::find("nft").is_none() {
        assert_ne!(std::env::var("TEROK_SHIELD_REQUIRE_NETNS").as_deref(), Ok("1"), "needs root and nft");
        eprintln!("SKIP preview_output_is_accepted_by_nft: needs root and nft");
        return;
    }
    let h = Home::new();
    for args in [
        &["preview"][..],
        &["preview", "--down"],
        &["preview", "--down", "--disengage"],
        &["preview", "--allow", "198.51.100.7", "--deny", "2001:db8::/32"],
    ] {
        let o = h.run(args);
        let script = "set -e; ip netns add \"$1\"; trap 'ip netns del \"$1\"' EXIT; ip netns exec \"$1\" nft -c -f -";
        let ns = format!("tsh-cli-{}", std::process::id());
        let mut child = Command::new("sh")
            .args(["-c", script, "sh", &ns])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        use std::io::Write;
        child.stdin.take().map(|mut s| s.write_all(o.stdout.as_bytes())).transpose().unwrap_or_else(|e| panic!("{e}"));
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{args:?}: nft -c refused: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn profiles_lists_bundled_and_user_profiles() {
    let h = Home::new();
    h.write("config/profiles/zz-mine.txt", "+a.example\n");
    h.write("config/profiles/base.txt", "+b.example\n");
    let o = h.run(&["profiles"]);
    assert_eq!(o.code, 0);
    assert_eq!(o.stdout, "base\ndev-node\ndev-python\ndev-standard\nkrun_guest\nnvidia-hpc\nzz-mine\n");
}

#[test]
fn status_and_check_environment_report_setup_health() {
    let h = Home::new();
    let o = h.run(&["status"]);
    assert_eq!(o.code, 0, "{o:?}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], format!("Version:  {}", env!("CARGO_PKG_VERSION")));
    assert!(lines[1].starts_with("Podman:   "));
    assert_eq!(
        &lines[2..7],
        [
            "Mode:     hook",
            "Hooks:    not-installed",
            "Health:   setup-needed",
            "Audit:    enabled",
            "Profiles: base, dev-node, dev-python, dev-standard, krun_guest, nvidia-hpc"
        ]
    );
    assert!(o.stdout.contains("\n  Setup receipt is missing\n"));
    assert!(o.stdout.ends_with("\nRun 'terok-shield setup' to refresh global hooks.\n"));

    let o = h.run(&["check-environment"]);
    assert_eq!(o.code, 0);
    assert!(
        o.stdout.contains("\nhooks=not-installed\nhealth=setup-needed\n\n  Setup receipt is missing\n"),
        "{}",
        o.stdout
    );

    // After a real setup (into this test's own dirs): ready. Setup needs podman and nft.
    if terok_shield::tools::find("podman").is_none() || terok_shield::tools::find("nft").is_none() {
        assert_ne!(std::env::var("TEROK_SHIELD_REQUIRE_NETNS").as_deref(), Ok("1"), "setup needs podman and nft");
        eprintln!("SKIP the setup half of status_and_check_environment_report_setup_health: needs podman and nft");
        return;
    }
    let o = h.run(&["setup"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(
        o.stdout.starts_with("Installing hooks to ") && o.stdout.ends_with("Done. Global hooks installed.\n"),
        "{}",
        o.stdout
    );
    let o = h.run(&["check-environment", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout));
    assert_eq!(
        (v["hooks"].as_str(), v["health"].as_str(), v["needs_setup"].as_bool()),
        (Some("global"), Some("ok"), Some(false)),
        "{v}"
    );

    h.write("config/config.yml", "audit:\n  enabled: false\n");
    let o = h.run(&["status"]);
    assert!(o.stdout.contains("Hooks:    global\nHealth:   ok\nAudit:    disabled\n"), "{}", o.stdout);
}

#[test]
fn config_warnings_keep_defaults() {
    let h = Home::new();
    h.write("config/config.yml", "- just\n- a list\n");
    let o = h.run(&["profiles"]);
    assert_eq!(o.code, 0);
    assert!(
        o.stderr.starts_with("Warning [shield]: ") && o.stderr.contains("expected mapping, got list"),
        "{}",
        o.stderr
    );
    h.write("config/config.yml", "mode: [unclosed\n");
    let o = h.run(&["profiles"]);
    assert_eq!(o.code, 0);
    assert!(o.stderr.contains("failed to parse"), "{}", o.stderr);
}

#[test]
fn state_dir_env_and_flag_are_honoured_by_logs() {
    let h = Home::new();
    h.write(
        "state/containers/web/audit.jsonl",
        "{\"ts\":\"2026-01-01T00:00:01+00:00\",\"container\":\"web\",\"action\":\"allowed\"}\nnot json\n",
    );
    h.write(
        "other/containers/db/audit.jsonl",
        "{\"ts\":\"2026-01-01T00:00:00+00:00\",\"container\":\"db\\u001b[2J\",\"action\":\"denied\"}\n",
    );
    let o = h.run(&["logs"]);
    assert_eq!(o.stdout, "{\"ts\": \"2026-01-01T00:00:01+00:00\", \"container\": \"web\", \"action\": \"allowed\"}\n");
    let other = h.path("other").display().to_string();
    let o = h.run(&["--state-dir", &other, "logs", "--container", "db"]);
    assert_eq!(
        o.stdout, "{\"ts\": \"2026-01-01T00:00:00+00:00\", \"container\": \"db\\u001b[2J\", \"action\": \"denied\"}\n",
        "control bytes are escaped"
    );
    let o = h.run(&["--state-dir", &h.path("empty").display().to_string(), "logs"]);
    assert_eq!(o.stdout, "No audit logs found.\n");
    // --json: one compact array, merged by time, escaped the same way.
    h.write(
        "state/containers/db/audit.jsonl",
        "{\"ts\":\"2026-01-01T00:00:00+00:00\",\"container\":\"db\",\"action\":\"blocked\",\"dest\":\"198.51.100.9\",\"port\":443,\"domain\":\"x\\u00e9\"}\n",
    );
    let o = h.run(&["logs", "--json"]);
    assert_eq!(
        o.stdout,
        "[{\"ts\":\"2026-01-01T00:00:00+00:00\",\"container\":\"db\",\"action\":\"blocked\",\"dest\":\"198.51.100.9\",\"port\":443,\"domain\":\"x\\u00e9\"},{\"ts\":\"2026-01-01T00:00:01+00:00\",\"container\":\"web\",\"action\":\"allowed\"}]\n"
    );
    let o = h.run(&["logs", "--json", "-n", "1", "--container", "web"]);
    assert_eq!(o.stdout, "[{\"ts\":\"2026-01-01T00:00:01+00:00\",\"container\":\"web\",\"action\":\"allowed\"}]\n");
    let o = h.run(&["--state-dir", &h.path("empty").display().to_string(), "logs", "--json"]);
    assert_eq!(o.stdout, "[]\n");
}

/// A bad-input case: kind, user profile `bad.txt`, `config.yml`, argv, expected stderr part.
type BadInput<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [&'a str], &'a str);

/// One bad input of each kind: one line on stderr, a non-zero exit, no file changed.
#[test]
fn bad_input_of_every_kind_fails_with_one_line_and_changes_nothing() {
    let cases: [BadInput; 11] = [
        ("profile line", Some("+ok.example\nnot-an-entry\n"), None, &["preview", "--profiles", "bad"], "Error: "),
        ("port", Some("+ok.example:0\n"), None, &["preview", "--profiles", "bad"], "Invalid port: '0'"),
        ("IP", None, None, &["preview", "--allow", "1.2.3"], "Error: Invalid IP/CIDR: '1.2.3'"),
        ("IP octet", None, None, &["preview", "--deny", "300.1.2.3"], "Error: Invalid IP/CIDR: '300.1.2.3'"),
        ("CIDR", None, None, &["preview", "--allow", "10.0.0.0/33"], "Error: Invalid IP/CIDR: '10.0.0.0/33'"),
        ("IPv6", None, None, &["preview", "--allow", "::gg"], "Error: Invalid IP/CIDR: '::gg'"),
        (
            "domain",
            None,
            None,
            &["preview", "--allow", "bad\u{1b}[31m.example"],
            "Error: Invalid domain: 'bad\\x1b[31m.example'",
        ),
        ("container name", None, None, &["logs", "--container", "../etc"], "Error: Unsafe container name: '../etc'"),
        (
            "profile name",
            None,
            None,
            &["preview", "--profiles", "../../etc/passwd"],
            "Error: Unsafe profile name: '../../etc/passwd'",
        ),
        (
            "config key",
            None,
            Some("audit:\n  enabled: true\n  colour: red\n"),
            &["profiles"],
            "Error [shield]: invalid ",
        ),
        (
            "config value",
            None,
            Some("default_profiles: []\n"),
            &["status"],
            "default_profiles: must list at least one profile",
        ),
    ];
    for (kind, profile, config, args, expect) in cases {
        let h = Home::new();
        h.write("state/containers/web/policy/live", "+198.51.100.10\n");
        if let Some(p) = profile {
            h.write("config/profiles/bad.txt", p);
        }
        if let Some(c) = config {
            h.write("config/config.yml", c);
        }
        let before = h.snapshot();
        let o = h.run(args);
        assert_eq!(o.code, 1, "{kind}: {o:?}");
        assert_eq!(o.stderr.lines().count(), 1, "{kind}: one line: {:?}", o.stderr);
        assert!(o.stderr.contains(expect), "{kind}: {:?} lacks {expect:?}", o.stderr);
        assert!(o.stderr.starts_with("Error"), "{kind}: {:?}", o.stderr);
        assert!(o.stdout.is_empty(), "{kind}: nothing on stdout: {:?}", o.stdout);
        assert!(before == h.snapshot(), "{kind}: a file changed");
    }
}

#[test]
fn profile_line_errors_name_the_file_and_line() {
    let h = Home::new();
    h.write("config/profiles/bad.txt", "# header\n+ok.example\n+1.2.3\n");
    let o = h.run(&["preview", "--profiles", "bad"]);
    let file = h.path("config/profiles/bad.txt").display().to_string();
    assert_eq!(o.stderr, format!("Error: {file}: line 3: Invalid IP/CIDR: '1.2.3' ('+1.2.3')\n"));
}

#[test]
fn run_checks_its_arguments_before_anything_else() {
    let h = Home::new();
    let o = h.run(&["run", "web"]);
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "Error: No image specified. Usage: terok-shield run <container> -- <image> [cmd...]\n")
    );
    let o = h.run(&["run", "web", "--", "--net=host", "--cap-add", "NET_ADMIN", "--name=x", "-d", "img"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr, "Error: Flag(s) managed by terok-shield, cannot override: --cap-add, --name, --network\n");
    let o = h.run(&["setup", "--root", "--user"]);
    assert_eq!(o.code, 2, "{o:?}");
    let o = h.run(&["prepare", "bad/name"]);
    assert_eq!((o.code, o.stderr.as_str()), (1, "Error: Unsafe container name: 'bad/name'\n"));
}
