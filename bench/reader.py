#!/usr/bin/env python3
"""Cost of the NFLOG reader, ours vs the Python reference terok-shield 0.9.0, same run.

    sudo bench/reader.py --ours target/release --ref /opt/tsh-ref/bin/terok-shield

Needs tests/env/setup.sh and the reference venv (docs/benchmarks.md). Per mode (rootful,
rootless) and side, in interleaved rounds, it starts a container with the side's own hooks
(descriptors wrapped to time each hook; the reference's get a session bus address, without
which its bridge hook starts no reader), waits for the reader, and measures:
  * the reader's processes (its session) and their summed resident memory (VmRSS);
  * whether it works: one connection to an unlisted address must give a `blocked` audit
    row within 2 s;
  * the bridge hook's poststop time (GNU time, elapsed), which includes stopping the reader.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from start_overhead import BASE_PATH, sides, workdir, wrap_hooks  # noqa: E402


def session_rss(sid):
    """(processes, summed VmRSS KiB) of session `sid`."""
    n, kib = 0, 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % p).read()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) != sid:  # session id
                continue
            for line in open("/proc/%s/status" % p):
                if line.startswith("VmRSS:"):
                    kib += int(line.split()[1])
            n += 1
        except (OSError, ValueError, IndexError):
            continue
    return n, kib


def blocked_rows(state):
    try:
        return sum(1 for l in open(os.path.join(state, "audit.jsonl")) if '"action":"blocked"' in l)
    except OSError:
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--modes", default="rootful,rootless")
    a = ap.parse_args()
    tenv, user, image, uid, home, work, bins, refbin = workdir(a.ours, "tsh-bench-reader-")
    report = []
    for mode in a.modes.split(","):
        w, ours, ref, ours_hooks, ref_hooks = sides(mode, work, tenv, user, uid, home, bins, refbin, a.ref)
        owner = user if mode == "rootless" else None
        extra = ["CONTAINERS_CONF=%s" % tenv["CONTAINERS_CONF"]] if mode == "rootful" else []
        extra += ["XDG_RUNTIME_DIR=%s" % ("/run/user/%s" % uid if mode == "rootless" else "/run/user/0")]
        logs = {
            "ours": wrap_hooks(ours_hooks, w + "/ours-wrapped", "%e", extra, owner),
            "ref": wrap_hooks(ref_hooks, w + "/ref-wrapped", "%e", extra + ["DBUS_SESSION_BUS_ADDRESS=unix:path=/run/tsh-bench-no-bus"], owner),
        }
        got = {s: {"procs": [], "rss": [], "works": 0, "started": 0} for s in ("ours", "ref")}
        for i in range(a.runs):
            order = ["ours", "ref"]
            random.shuffle(order)
            for label in order:
                side = ours if label == "ours" else ref
                name = "rd-%s-%s-%d" % (label, mode, i)
                if label == "ours":
                    _, r = side.run([bins + "/terok-shield", "prepare", name, "--profiles", "lab", "--json"])
                    state = os.path.join(w, "state-ours/containers", name)
                else:
                    _, r = side.run([a.ref, "--state-dir", w + "/state-ref", "prepare", name, "--profiles", "lab", "--json"])
                    state = os.path.join(w, "state-ref/containers", name)
                flags = json.loads(r.stdout)
                side.run(["podman", "run", "-d", "--hooks-dir", w + "/%s-wrapped" % label] + flags + [image, "sleep", "600"], {"PATH": BASE_PATH})
                pid = None
                for _ in range(50):
                    try:
                        pid = int(open(os.path.join(state, "reader.pid")).read())
                        break
                    except (OSError, ValueError):
                        time.sleep(0.1)
                time.sleep(2)  # the reference's reader re-executes itself before it binds
                if pid:
                    n, kib = session_rss(pid)
                    if n:
                        got[label]["started"] += 1
                        got[label]["procs"].append(n)
                        got[label]["rss"].append(kib)
                side.run(["podman", "exec", name, "sh", "-c", "nc -w 1 198.51.100.11 80 </dev/null; true"], {"PATH": BASE_PATH}, check=False)
                deadline = time.time() + 2
                while time.time() < deadline and not blocked_rows(state):
                    time.sleep(0.05)
                got[label]["works"] += blocked_rows(state) > 0
                side.run(["podman", "rm", "-f", name], {"PATH": BASE_PATH}, check=False)
        for label in ("ours", "ref"):
            rows = [l.split() for l in open(logs[label])] if os.path.exists(logs[label]) else []
            post = [float(r[0]) for r in rows if len(r) == 2 and r[1].endswith("bridge-poststop.json")]
            g = got[label]
            report.append((mode, label, g, post))
    print("NFLOG reader cost, %d rounds per mode and side; median (min-max)" % a.runs)
    for mode, label, g, post in report:
        def mm(xs, f="%d"):
            return (f + " (" + f + "-" + f + ")") % (statistics.median(xs), min(xs), max(xs)) if xs else "-"
        print("[%s] %-4s reader running %d/%d, processes %s, RSS %s KiB, blocked row within 2 s %d/%d, bridge poststop %s s"
              % (mode, label, g["started"], a.runs, mm(g["procs"]), mm(g["rss"]), g["works"], a.runs, mm(post, "%.3f")))


if __name__ == "__main__":
    main()
