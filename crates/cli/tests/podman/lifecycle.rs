//! Starts and restarts: runtime decisions survive a restart, every failure fails closed
//! (proven by a marker file), the installed hooks outlive the build tree.

use super::harness::*;

fn restart_keeps_runtime_decisions(who: Who) {
    let Some((h, name)) = shielded(who, "restart", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let probe = |what: &str, want: &[(&str, bool)]| h.probe(&name, &format!("{who:?} {what}"), want);
    probe("first start", &[(ALLOWED_V4, true), (UNLISTED_V4, false)]);
    // While it ran, the operator allowed one host and denied another (policy/live is what
    // the allow/deny verbs write).
    std::fs::write(h.state_dir(&name).join("policy/live"), format!("+{UNLISTED_V4}\n-{ALLOWED_V4}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.podman(&["stop", "-t", "0", &name]).code, 0);
    let started = h.podman(&["start", &name]);
    assert_eq!(started.code, 0, "{}", started.stderr);
    probe("after stop + start", &[(ALLOWED_V4, false), (UNLISTED_V4, true)]);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_restart_keeps_runtime_allows_and_denies() {
    restart_keeps_runtime_decisions(Who::Root);
}

#[test]
fn rootless_restart_keeps_runtime_allows_and_denies() {
    restart_keeps_runtime_decisions(Who::User);
}

/// Each broken start: podman refuses it and the workload never writes its marker.
fn fail_closed(who: Who) {
    let Some(e) = env() else { return };
    ensure_setup(who);
    let h = Home::new(who);
    h.profile("lab", &format!("+{ALLOWED_V4}\n"));
    // One good bundle per kind of DNS: the shield's resolver, and dnsmasq.
    let good = h.shield(&["prepare", "good", "--profiles", "lab"]);
    assert_eq!(good.code, 0, "{}", good.stderr);
    h.file("config/config.yml", DNSMASQ_LIVE, 0o600);
    let good_dnsmasq = h.shield(&["prepare", "gooddns", "--profiles", "lab"]);
    assert_eq!(good_dnsmasq.code, 0, "{}", good_dnsmasq.stderr);
    h.file("config/config.yml", "", 0o600);
    let sd = h.state_dir("good");
    let sd_dnsmasq = h.state_dir("gooddns");
    h.sh("mkdir -p markers bad-ruleset && chmod 0777 markers");
    // Bundles broken in each way, made from the good one.
    h.sh(&format!("cp -a {0} writable && chmod 0770 writable && ln -s {0} link", sd.display()));
    h.sh(&format!("cp -a {0} corrupt && sed -i 's/policy drop;/policy accept;/' corrupt/ruleset.nft", sd.display()));
    h.sh(&format!("cp -a {0} noruleset && rm noruleset/ruleset.nft", sd.display()));
    // The resolver: a resolv.conf naming an address it cannot listen on, and a helper that
    // cannot start (its log is a directory).
    h.sh(&format!("cp -a {0} badresolv && echo 'nameserver 10.9.9.9' > badresolv/resolv.conf", sd.display()));
    h.sh(&format!("cp -a {0} nohelper && rm -f nohelper/reader.log && mkdir nohelper/reader.log", sd.display()));
    // dnsmasq that exits 1, and one that exits 0 but never starts (no pid file).
    assert!(sd_dnsmasq.join("dnsmasq.conf").exists(), "{who:?}: the good bundle is not on a dnsmasq tier");
    h.file("bin/dnsmasq-fails", "#!/bin/sh\nexit 1\n", 0o755);
    h.file("bin/dnsmasq-vanishes", "#!/bin/sh\nexit 0\n", 0o755);
    for (copy, bin) in [("dnsfails", "dnsmasq-fails"), ("dnsvanishes", "dnsmasq-vanishes")] {
        let bin = h.dir.join("bin").join(bin);
        h.sh(&format!("cp -a {} {copy} && echo {} > {copy}/dnsmasq.command", sd_dnsmasq.display(), bin.display()));
    }
    let d = |n: &str| h.dir.join(n).display().to_string();
    let foreign = if who == Who::Root { "/tmp".to_string() } else { std::env::temp_dir().display().to_string() };
    let mut cases: Vec<(&str, String, &str)> = vec![
        ("relative state dir", "relative/dir".into(), "18"),
        ("symlinked state dir", d("link"), "18"),
        ("group-writable state dir", d("writable"), "18"),
        ("wrong version", sd.display().to_string(), "17"),
        ("corrupted ruleset", d("corrupt"), "18"),
        ("missing ruleset", d("noruleset"), "18"),
        ("resolver address tampered", d("badresolv"), "18"),
        ("resolver cannot start", d("nohelper"), "18"),
        ("dnsmasq exits 1", d("dnsfails"), "18"),
        ("dnsmasq never starts", d("dnsvanishes"), "18"),
    ];
    if who == Who::User {
        cases.push(("foreign-owned state dir", foreign, "18"));
    } else {
        let owned = d("foreign");
        h.sh(&format!("cp -a {} {owned} && chown 65534 {owned}", sd.display()));
        cases.push(("foreign-owned state dir", owned, "18"));
    }
    let markers = h.dir.join("markers");
    // A container with the annotations of `state_dir` and `version` that touches `/m/<marker>`.
    // Plain `podman run` with podman's own flags (no `terok-shield run`).
    let run_marked_with = |state_dir: &str, version: &str, marker: &str, extra: &[&str]| {
        let (annotations, volume) = (
            [
                "terok.shield.profiles=lab".to_string(),
                format!("terok.shield.state_dir={state_dir}"),
                format!("terok.shield.version={version}"),
            ],
            format!("{}:/m", markers.display()),
        );
        let mut args = vec!["run", "--rm"];
        for a in &annotations {
            args.extend(["--annotation", a.as_str()]);
        }
        args.extend(["-v", volume.as_str()]);
        args.extend(extra);
        let touch = format!("/m/{marker}");
        args.extend([e.image.as_str(), "touch", touch.as_str()]);
        h.podman(&args)
    };
    // podman's default capabilities (rootful, here) include CAP_NET_RAW, which the hook refuses:
    // drop it as `terok-shield prepare`'s flags do, so each case fails for its own reason.
    let run_marked = |state_dir: &str, version: &str, marker: &str| {
        run_marked_with(state_dir, version, marker, &["--cap-drop", "NET_RAW", "--cap-drop", "NET_ADMIN"])
    };
    for (i, (what, state_dir, version)) in cases.iter().enumerate() {
        let out = run_marked(state_dir, version, &format!("ran-{i}"));
        assert_ne!(out.code, 0, "{who:?} {what}: podman started the container");
        assert!(!markers.join(format!("ran-{i}")).exists(), "{who:?} {what}: the workload ran");
    }
    // A workload that could undo its firewall (issue 14.4): the hook reads the container's
    // config.json and refuses it, however the container was started.
    let good_dir = sd.display().to_string();
    let hook_log = || std::fs::read_to_string(sd.join("hook-error.log")).unwrap_or_default();
    for (i, (extra, reason)) in [
        (&["--privileged"][..], "would hold CAP_NET_ADMIN (effective, permitted, bounding"),
        (&["--cap-add", "NET_ADMIN"][..], "would hold CAP_NET_ADMIN ("),
        (&["--cap-add", "NET_RAW"][..], "would hold CAP_NET_RAW ("),
        (&["--cap-add", "SYS_ADMIN"][..], "CAP_SYS_ADMIN ("),
        // podman grants CAP_NET_RAW with the host's network: drop it to reach the second check.
        (&["--network", "host", "--cap-drop", "NET_RAW"][..], "no network namespace of its own"),
        (&["--pid", "host", "--cap-drop", "NET_RAW"][..], "shares the host's process namespace"),
    ]
    .into_iter()
    .enumerate()
    {
        let before = hook_log().len();
        let out = run_marked_with(&good_dir, "18", &format!("caps-{i}"), extra);
        assert_ne!(out.code, 0, "{who:?} {extra:?}: podman started the container");
        assert!(!markers.join(format!("caps-{i}")).exists(), "{who:?} {extra:?}: the workload ran");
        let log = hook_log();
        assert!(
            log.get(before..).is_some_and(|new| new.contains(reason)),
            "{who:?} {extra:?}: no {reason:?} in {log} (podman: {})",
            out.stderr
        );
    }
    // `terok-shield run` refuses those flags before podman sees them.
    for extra in [
        &["--privileged"][..],
        &["--pod", "p1"][..],
        &["--cap-add", "NET_RAW"][..],
        &["--network=host"][..],
        &["--pid=host"][..],
    ] {
        let mut args = vec!["run", "refused", "--profiles", "lab", "--"];
        args.extend(extra);
        args.extend([e.image.as_str(), "true"]);
        let out = h.shield(&args);
        assert_eq!(out.code, 1, "{who:?} run {extra:?}: {}", out.stderr);
        assert!(out.stderr.contains(extra[0].split('=').next().unwrap_or_default()), "{who:?}: {}", out.stderr);
    }
    // The controls: the good bundles start and the workload runs.
    for (tag, dir) in [("good", &sd), ("gooddns", &sd_dnsmasq)] {
        let out = run_marked(&dir.display().to_string(), "18", &format!("ran-{tag}"));
        assert_eq!(out.code, 0, "{who:?} control {tag}: {}", out.stderr);
        assert!(markers.join(format!("ran-{tag}")).exists(), "{who:?}: the control container {tag} did not run");
    }
}

#[test]
fn rootful_failures_fail_closed() {
    fail_closed(Who::Root);
}

#[test]
fn rootless_failures_fail_closed() {
    fail_closed(Who::User);
}

/// setup installs a copy of the hook binary: deleting the binaries it was installed from
/// (a build tree) does not disarm the hooks.
#[test]
fn hooks_keep_working_after_the_build_tree_is_deleted() {
    let Some(e) = env() else { return };
    // Root's setup lock is global: let the shared root setup finish first.
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    let build = h.dir.join("build");
    std::fs::create_dir(&build).unwrap_or_else(|err| panic!("{err}"));
    for name in ["terok-shield", "terok-shield-hook"] {
        std::fs::copy(e.bin.join(name), build.join(name)).unwrap_or_else(|err| panic!("{err}"));
    }
    let shield = build.join("terok-shield").display().to_string();
    let hooks = h.dir.join("hooks");
    let env_prefix = format!(
        "TEROK_SHIELD_SYSTEM_HOOKS_DIR={} TEROK_ROOT={1}/terok XDG_CONFIG_HOME={1}/xdg",
        hooks.display(),
        h.dir.display()
    );
    h.sh(&format!("{env_prefix} {shield} setup"));
    h.profile("lab", &format!("+{ALLOWED_V4}\n"));
    let flags = h.sh(&format!("{env_prefix} {shield} prepare gone --profiles lab --json")).stdout;
    let flags: Vec<String> = serde_json::from_str(&flags).unwrap_or_else(|err| panic!("{err}"));
    std::fs::remove_dir_all(&build).unwrap_or_else(|err| panic!("{err}"));
    let name = format!("tsh-gone-{}", std::process::id());
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "--hooks-dir".into(),
        hooks.display().to_string(),
    ];
    args.extend(flags.into_iter().filter(|f| f != "--name" && f != "gone"));
    args.extend([e.image.clone(), "sleep".into(), "600".into()]);
    let out = h.podman(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let want = [(ALLOWED_V4, true), (UNLISTED_V4, false)];
    let stdout = settle(&want, |hs| {
        let mut a = vec!["exec", name.as_str(), "sh", "-c", PROBE, "probe"];
        a.extend(hs);
        h.podman(&a).stdout
    });
    expect(&stdout, &want, "hooks from the installed copy");
    h.podman(&["rm", "-f", &name]);
}

/// nft missing when the hook runs (its PATH, which the descriptors carry, has no nft):
/// podman refuses the start and the workload never runs.
#[test]
fn rootful_start_fails_closed_when_nft_is_missing() {
    let Some(e) = env() else { return };
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    h.profile("lab", &format!("+{ALLOWED_V4}\n"));
    let flags = h.shield(&["prepare", "nonft", "--profiles", "lab", "--json"]);
    assert_eq!(flags.code, 0, "{}", flags.stderr);
    let flags: Vec<String> = serde_json::from_str(&flags.stdout).unwrap_or_else(|err| panic!("{err}"));
    // The installed descriptors, with a PATH that lacks nft.
    let installed = terok_shield::setup::system_hooks_dir(&terok_shield::paths::Env::fixed(&[], true));
    let hooks = h.dir.join("hooks-no-nft");
    std::fs::create_dir(&hooks).unwrap_or_else(|err| panic!("{err}"));
    for name in ["terok-shield-createRuntime.json", "terok-shield-poststop.json"] {
        let text = std::fs::read_to_string(installed.join(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
        let mut d: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}"));
        d["hook"]["env"] = serde_json::json!(["PATH=/nonexistent:/usr/bin:/bin"]);
        std::fs::write(hooks.join(name), d.to_string()).unwrap_or_else(|err| panic!("{err}"));
    }
    h.sh("mkdir -p markers && chmod 0777 markers");
    let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--hooks-dir".into(), hooks.display().to_string()];
    args.extend(flags.into_iter().filter(|f| f != "--name" && f != "nonft"));
    args.extend([
        "-v".into(),
        format!("{}:/m", h.dir.join("markers").display()),
        e.image.clone(),
        "touch".into(),
        "/m/ran".into(),
    ]);
    let out = h.podman(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(out.code, 0, "podman started the container without nft");
    assert!(!h.dir.join("markers/ran").exists(), "the workload ran");
    let log = std::fs::read_to_string(h.state_dir("nonft").join("hook-error.log")).unwrap_or_default();
    assert!(log.contains("nft not found on PATH"), "{log}");
}
