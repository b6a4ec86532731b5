#!/usr/bin/env python3
"""Start overhead of the shield, ours vs the Python reference terok-shield 0.9.0, same run.

    sudo bench/start_overhead.py --ours target/release --ref /opt/tsh-ref/bin/terok-shield

Needs tests/env/setup.sh (test user, image, containers.conf) and the reference installed in
a venv whose interpreter the test user can read (see docs/benchmarks.md). Per mode (rootful,
rootless), in interleaved rounds, it times:
  plain:  podman run --rm IMAGE true
  ours:   terok-shield prepare C   +   podman run --rm --hooks-dir OURS <flags> IMAGE true
  ref:    terok-shield prepare C   +   podman run --rm --hooks-dir REF  <flags> IMAGE true
Each side runs with its own hooks only (--hooks-dir), in its own temporary roots. Both
sides find dnsmasq and start one per container (tier dnsmasq-live), so both hooks do the
same work. Then it measures each hook process's peak RSS (wrapper
descriptors running the hook under GNU time) and the prepare time of a 100 000-entry
allowlist.
"""
import argparse
import ipaddress
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ENV_FILE = "/etc/terok-shield-test/env"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def load_env():
    out = {}
    for line in open(ENV_FILE):
        if "=" in line:
            k, v = line.strip().split("=", 1)
            out[k] = v
    return out


class Side:
    """One command environment: who runs it and with which variables."""

    def __init__(self, mode, user, env):
        self.mode, self.user, self.env = mode, user, env

    def argv(self, cmd, extra=None):
        env = dict(self.env, **(extra or {}))
        if self.mode == "rootless":
            return ["runuser", "-u", self.user, "--", "env", "-i"] + ["%s=%s" % kv for kv in env.items()] + cmd
        return ["env", "-i"] + ["%s=%s" % kv for kv in env.items()] + cmd

    def run(self, cmd, extra=None, check=True):
        t = time.perf_counter()
        r = subprocess.run(self.argv(cmd, extra), cwd="/tmp", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        dt = time.perf_counter() - t
        if check and r.returncode != 0:
            sys.exit("failed (%s): %s\n%s" % (self.mode, " ".join(cmd), r.stderr))
        return dt, r


def workdir(ours, prefix, dnsmasq=False):
    """The test environment, a world-readable work dir with copies of our binaries, and the
    reference's PATH directory (its tools; dnsmasq only when asked)."""
    tenv = load_env()
    user, image = tenv["TEROK_SHIELD_TEST_USER"], tenv["TEROK_SHIELD_TEST_IMAGE"]
    uid = subprocess.run(["id", "-u", user], capture_output=True, text=True).stdout.strip()
    home = subprocess.run(["getent", "passwd", user], capture_output=True, text=True).stdout.split(":")[5]
    work = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(work, 0o755)
    bins = os.path.join(work, "bin")
    os.makedirs(bins)
    for b in ("terok-shield", "terok-shield-hook"):
        shutil.copy(os.path.join(ours, b), bins)
    refbin = os.path.join(work, "refbin")
    os.makedirs(refbin)
    for t in ("podman", "nft", "nsenter", "dig", "getent", "ip") + (("dnsmasq",) if dnsmasq else ()):
        p = shutil.which(t, path=BASE_PATH)
        if p:
            os.symlink(p, os.path.join(refbin, t))
    return tenv, user, image, uid, home, work, bins, refbin


def sides(mode, work, tenv, user, uid, home, bins, refbin, ref_cli):
    """Per mode: a work dir with the profile `lab` (198.51.100.10), our side and the
    reference's side in their own roots, both set up. Returns (dir, ours, ref, our hooks
    dir, the reference's hooks dir)."""
    w = os.path.join(work, mode)
    os.makedirs(os.path.join(w, "conf/profiles"))
    with open(os.path.join(w, "conf/profiles/lab.txt"), "w") as f:
        f.write("+198.51.100.10\n")
    for d in ("xdg/containers", "xdg-ref/containers", "state-ours", "state-ref"):
        os.makedirs(os.path.join(w, d), exist_ok=True)
    if mode == "rootless":
        for d in ("xdg", "xdg-ref"):
            shutil.copy(os.path.join(home, ".config/containers/containers.conf"), os.path.join(w, d, "containers"))
        subprocess.run(["chown", "-R", "%s:" % user, w], check=True)
        common = {"HOME": home, "USER": user, "XDG_RUNTIME_DIR": "/run/user/%s" % uid}
    else:
        common = {"HOME": "/root", "CONTAINERS_CONF": tenv["CONTAINERS_CONF"]}
    # XDG_DATA_HOME stays: rootless podman keeps its image storage there.
    ours = Side(mode, user, dict(common, PATH=BASE_PATH, TEROK_ROOT=w + "/ours-root", XDG_CONFIG_HOME=w + "/xdg",
                                 TEROK_SHIELD_SYSTEM_HOOKS_DIR=w + "/ours-sys",
                                 TEROK_SHIELD_CONFIG_DIR=w + "/conf", TEROK_SHIELD_STATE_DIR=w + "/state-ours"))
    ref = Side(mode, user, dict(common, PATH=refbin + ":/usr/bin:/bin", TEROK_ROOT=w + "/ref-root",
                                XDG_CONFIG_HOME=w + "/xdg-ref", TEROK_SHIELD_CONFIG_DIR=w + "/conf"))
    ours.run([bins + "/terok-shield", "setup"])
    ref.run([ref_cli, "setup"])
    ours_hooks = w + ("/ours-sys" if mode == "rootful" else "/ours-root/shield/hooks")
    return w, ours, ref, ours_hooks, w + "/ref-root/shield/hooks"


def wrap_hooks(hooks, dst, time_format, extra_env, owner):
    """Copies in `dst` of the hook descriptors in `hooks` that run each hook under GNU time
    (`time_format` + the descriptor's name appended to `dst`/time.log), with `extra_env`
    added; owned by `owner` when given. Returns the log's path."""
    os.makedirs(dst)
    log = os.path.join(dst, "time.log")
    for name in os.listdir(hooks):
        if not name.endswith(".json"):
            continue
        d = json.load(open(os.path.join(hooks, name)))
        hook = d["hook"]
        hook["args"] = ["/usr/bin/time", "-a", "-o", log, "-f", "%s %s" % (time_format, name)] + [hook["path"]] + hook["args"][1:]
        hook["path"] = "/usr/bin/time"
        hook["env"] = hook.get("env", []) + extra_env
        json.dump(d, open(os.path.join(dst, name), "w"))
    if owner:
        subprocess.run(["chown", "-R", "%s:" % owner, dst], check=True)
    return log


def big_lines(n, kind):
    """The big allowlist (the same as crates/cli/tests/hook.rs's mixed_allowlist)."""
    if kind == "hosts":
        return ["+%d.%d.%d.%d\n" % (11, (i * 3) >> 16 & 255, (i * 3) >> 8 & 255, (i * 3) & 255) for i in range(n)]
    port = ":443" if kind == "mixed-ports" else ""
    # /29s 16 addresses apart: no two are adjacent (adjacent networks of one scope would
    # join into one range of a port map and flatter it).
    v4 = lambda base, k, step=8: str(ipaddress.IPv4Address(base + k * step))
    out = []
    for i in range(n):
        k = i // 4
        if i % 4 == 0:
            out.append("+%s%s\n" % (v4(0x0B000000, k), port))
        elif i % 4 == 1:
            out.append("+%s/29%s\n" % (v4(0x0C000000, k, 16), port))
        else:
            if i % 4 == 2:
                host = "%s" % ipaddress.IPv6Address((0x20010db80001 << 80) | k * 2)
            elif k % 2 == 0:
                host = "%s/64" % ipaddress.IPv6Address((0x20010db80002 << 80) | (k << 64))
            else:
                host = "%s/112" % ipaddress.IPv6Address((0x20010db80003 << 80) | (k << 16))
            out.append("+[%s]%s\n" % (host, port) if port else "+%s\n" % host)
    return out


def stats(xs):
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=10) if len(xs) > 1 else xs * 9
    return statistics.median(xs), q[0], q[-1]


def fmt(xs, unit=1e3, suffix="ms"):
    m, lo, hi = stats(xs)
    return "%.0f %s (%.0f-%.0f)" % (m * unit, suffix, lo * unit, hi * unit)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True, help="directory holding terok-shield and terok-shield-hook")
    ap.add_argument("--ref", required=True, help="the reference's terok-shield entry point")
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--modes", default="rootful,rootless")
    ap.add_argument("--big", type=int, default=100000, help="entries for the prepare benchmark (0: skip)")
    ap.add_argument("--big-kind", default="hosts", choices=("hosts", "mixed", "mixed-ports"),
                    help="the big allowlist: IPv4 addresses; or half networks (IPv4 /29, IPv6 /64 and /112), half addresses; or that with :443 on every entry")
    a = ap.parse_args()
    tenv, user, image, uid, home, work, bins, refbin = workdir(a.ours, "tsh-bench-", dnsmasq=True)
    results = {}
    for mode in a.modes.split(","):
        w, ours, ref, ours_hooks, ref_hooks = sides(mode, work, tenv, user, uid, home, bins, refbin, a.ref)
        # No shield: the same user environment, podman settings and PATH as ours.
        keep = ("HOME", "USER", "XDG_RUNTIME_DIR", "CONTAINERS_CONF", "PATH", "XDG_CONFIG_HOME")
        plain = Side(mode, user, {k: v for k, v in ours.env.items() if k in keep})
        if a.big:
            with open(os.path.join(w, "conf/profiles/big.txt"), "w") as f:
                f.writelines(big_lines(a.big, a.big_kind))

        def prepare(side, name, profile="lab"):
            if side is ours:
                dt, r = ours.run([bins + "/terok-shield", "prepare", name, "--profiles", profile, "--json"])
            else:
                dt, r = ref.run([a.ref, "--state-dir", w + "/state-ref", "prepare", name, "--profiles", profile, "--json"])
            return dt, json.loads(r.stdout)

        def start(side, hooks, flags):
            # podman itself runs with the normal PATH (the reference's is its own tool dir).
            dt, _ = side.run(["podman", "run", "--rm", "--hooks-dir", hooks] + flags + [image, "true"], {"PATH": BASE_PATH})
            return dt

        rows = {k: [] for k in ("plain", "ours_prep", "ours_run", "ref_prep", "ref_run", "ours_over", "ref_over")}
        for i in range(a.runs):
            order = ["plain", "ours", "ref"]
            random.shuffle(order)
            got = {}
            for who in order:
                if who == "plain":
                    got["plain"] = plain.run(["podman", "run", "--rm", image, "true"])[0]
                else:
                    side, hooks = (ours, ours_hooks) if who == "ours" else (ref, ref_hooks)
                    dp, flags = prepare(side, "%s-%s-%d" % (who, mode, i))
                    got[who + "_prep"] = dp
                    got[who + "_run"] = start(side, hooks, flags)
            for k, v in got.items():
                rows[k].append(v)
            rows["ours_over"].append(got["ours_prep"] + got["ours_run"] - got["plain"])
            rows["ref_over"].append(got["ref_prep"] + got["ref_run"] - got["plain"])
        def wrap(hooks, dst):
            return wrap_hooks(hooks, dst, "%M %e", ["TEROK_SHIELD_HOOK_STATS=1"], user if mode == "rootless" else None)

        def timings(log):
            rows = [l.split() for l in open(log)] if os.path.exists(log) else []
            return [(int(r[0]), float(r[1]), r[2]) for r in rows if len(r) == 3 and r[0].isdigit()]

        def own_peaks(label, kind, marker):
            """Peaks our hook logged (TEROK_SHIELD_HOOK_STATS) in the bundles' hook-error.log."""
            state = w + ("/state-ours" if label == "ours" else "/state-ref")
            own = []
            for i in range(3):
                try:
                    for line in open("%s/containers/%s-%s-%s-%d/hook-error.log" % (state, label, kind, mode, i)):
                        if marker in line:
                            own.append(int(line.split("peak RSS ")[1].split()[0]))
                except OSError:
                    pass
            return own

        # Hook memory.
        rss = {}
        for label, side, hooks in (("ours", ours, ours_hooks), ("ref", ref, ref_hooks)):
            log = wrap(hooks, os.path.join(w, label + "-rss"))
            for i in range(3):
                _, flags = prepare(side, "%s-rss-%s-%d" % (label, mode, i))
                start(side, os.path.join(w, label + "-rss"), flags)
            rss[label] = [t[0] for t in timings(log)]
            rss[label + "_own"] = own_peaks(label, "rss", "peak RSS")
        big, big_hook = {}, {}
        if a.big:
            for label, side, hooks in (("ours", ours, ours_hooks), ("ref", ref, ref_hooks)):
                times, flag_sets = [], []
                for i in range(3):
                    dt, flags = prepare(side, "%s-big-%s-%d" % (label, mode, i), "big")
                    times.append(dt)
                    flag_sets.append(flags)
                big[label] = times
                log = wrap(hooks, os.path.join(w, label + "-big"))
                failures = []
                for flags in flag_sets:
                    _, r = side.run(["podman", "run", "--rm", "--hooks-dir", os.path.join(w, label + "-big")] + flags + [image, "true"], {"PATH": BASE_PATH}, check=False)
                    if r.returncode != 0:
                        failures.append(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "exit %d" % r.returncode)
                hook = [t[1] for t in timings(log) if t[2] == "terok-shield-createRuntime.json"]
                big_hook[label] = (hook, failures, own_peaks(label, "big", "Nft hook, peak RSS"))
        results[mode] = (rows, rss, big, big_hook)

    print("Start overhead, %d interleaved rounds per mode; median (p10-p90)" % a.runs)
    for mode, (rows, rss, big, big_hook) in results.items():
        print("\n[%s]" % mode)
        print("  podman run, no shield:        %s" % fmt(rows["plain"]))
        print("  ours: prepare                 %s" % fmt(rows["ours_prep"]))
        print("  ours: podman run with hooks   %s" % fmt(rows["ours_run"]))
        print("  ref:  prepare                 %s" % fmt(rows["ref_prep"]))
        print("  ref:  podman run with hooks   %s" % fmt(rows["ref_run"]))
        o, r = statistics.median(rows["ours_over"]), statistics.median(rows["ref_over"])
        print("  added per start: ours %s, ref %s, ours/ref = %.3f" % (fmt(rows["ours_over"]), fmt(rows["ref_over"]), o / r))
        for label in ("ours", "ref"):
            xs = rss[label]
            if xs:
                print("  %s hook process tree peak RSS (GNU time, children included): median %d KiB, max %d KiB over %d hook runs" % (label, statistics.median(xs), max(xs), len(xs)))
        if rss.get("ours_own"):
            xs = rss["ours_own"]
            print("  ours hook process's own peak RSS (VmHWM): median %d KiB, max %d KiB over %d hook runs" % (statistics.median(xs), max(xs), len(xs)))
        if big:
            ob, rb = statistics.median(big["ours"]), statistics.median(big["ref"])
            print("  prepare of %d entries: ours %s, ref %s, ours/ref = %.3f" % (a.big, fmt(big["ours"]), fmt(big["ref"]), ob / rb))
            for label in ("ours", "ref"):
                hook, failures, own = big_hook[label]
                text = "median %.2f s over %d starts" % (statistics.median(hook), len(hook)) if hook else "no completed hook"
                if own:
                    text += ", own peak RSS %d KiB" % max(own)
                if failures:
                    text += "; %d of 3 starts FAILED: %s" % (len(failures), failures[0][:160])
                print("  %s createRuntime hook with %d entries: %s" % (label, a.big, text))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
