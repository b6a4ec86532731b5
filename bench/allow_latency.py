#!/usr/bin/env python3
"""`allow` latency on a running container: ours vs the Python reference 0.9.0, same run.

    sudo bench/allow_latency.py --ours target/release --ref /opt/tsh-ref/bin/terok-shield

Rootless (the test user): one container started by each implementation with its own hooks
(--hooks-dir), then interleaved `allow C <address>` calls with distinct addresses; median
and spread of each, timed by a helper running as the user (so runuser/env start-up is not
in the figures). Rootful: ours only; the reference's verbs go through `podman unshare`
and do not work for a rootful container (shown). Then 1 000 successive allows on our
rootless container, first and last hundred compared. Then interleaved `down` + `up` pairs
on the same containers: `up` rebuilds the table and ends the flows it no longer admits;
`--before DIR` times a second build of ours (an older commit) on our container as well.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from start_overhead import BASE_PATH, sides, workdir  # noqa: E402


TIMER = r"""
import json, subprocess, sys, time
out = []
for cmd in json.load(sys.stdin):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out.append([time.perf_counter() - t, r.returncode, r.stderr.strip().splitlines()[-1:] ])
print(json.dumps(out))
"""


def timed(side, cmds):
    """Run `cmds` one after another inside one helper process running as the side's user,
    timing each from there: no runuser or env start-up in the figures."""
    p = subprocess.run(side.argv(["/usr/bin/python3", "-c", TIMER]), input=json.dumps(cmds), cwd="/tmp",
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("timer failed: " + p.stderr)
    return json.loads(p.stdout)


def med(xs):
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=10) if len(xs) > 1 else xs * 9
    return "%.1f ms (p10 %.1f, p90 %.1f)" % (statistics.median(xs) * 1e3, q[0] * 1e3, q[-1] * 1e3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--successive", type=int, default=1000)
    ap.add_argument("--before", help="the release dir of an older build of ours, timed on the same container")
    a = ap.parse_args()
    tenv, user, image, uid, home, work, bins, refbin = workdir(a.ours, "tsh-allow-")
    results = {}
    for mode in ("rootless", "rootful"):
        w, ours, ref, ours_hooks, ref_hooks = sides(mode, work, tenv, user, uid, home, bins, refbin, a.ref)
        name_o, name_r = "allow-ours-%s" % mode, "allow-ref-%s" % mode
        _, r = ours.run([bins + "/terok-shield", "prepare", name_o, "--profiles", "lab", "--json"])
        flags_o = [f for f in json.loads(r.stdout) if f not in ("--name", name_o)]
        _, r = ref.run([a.ref, "--state-dir", w + "/state-ref", "prepare", name_r, "--profiles", "lab", "--json"])
        flags_r = [f for f in json.loads(r.stdout) if f not in ("--name", name_r)]
        ours.run(["podman", "run", "-d", "--name", name_o, "--hooks-dir", ours_hooks] + flags_o + [image, "sleep", "900"], {"PATH": BASE_PATH})
        ref.run(["podman", "run", "-d", "--name", name_r, "--hooks-dir", ref_hooks] + flags_r + [image, "sleep", "900"], {"PATH": BASE_PATH})
        o, op, rr, ref_error = [], [], [], None
        for i in range(a.runs):
            ip = "198.51.100.%d" % (100 + i)
            (dt, rc, err), = timed(ours, [[bins + "/terok-shield", "allow", name_o, ip]])
            if rc != 0:
                sys.exit("our allow failed: %s" % err)
            o.append(dt)
            # The same with a port (issue 17): another address, on TCP 443 only.
            (dt, rc, err), = timed(ours, [[bins + "/terok-shield", "allow", name_o, "198.51.100.%d:443" % (200 + i)]])
            if rc != 0:
                sys.exit("our allow with a port failed: %s" % err)
            op.append(dt)
            (dt, rc, err), = timed(ref, [[a.ref, "--state-dir", w + "/state-ref", "allow", name_r, ip]])
            if rc == 0:
                rr.append(dt)
            else:
                ref_error = (err or ["exit %d" % rc])[-1]
        _, st = ref.run([a.ref, "--state-dir", w + "/state-ref", "status", name_r], check=False)
        succ = []
        if mode == "rootless" and a.successive:
            cmds = [[bins + "/terok-shield", "allow", name_o, "198.51.%d.%d" % (101 + i // 250, 1 + i % 250)] for i in range(a.successive)]
            runs = timed(ours, cmds)
            if any(rc != 0 for _, rc, _ in runs):
                sys.exit("a successive allow failed")
            succ = [dt for dt, _, _ in runs]
        # The reference's down/up require the container id (ours takes it optionally).
        ids = {}
        for side, name in ((ours, name_o), (ref, name_r)):
            _, r = side.run(["podman", "inspect", "--format", "{{.Id}}", name], {"PATH": BASE_PATH}, check=False)
            ids[name] = ["--container-id", r.stdout.strip()[:12]]
        postures = {"ours": [], "reference": [], "ours before": []}
        failed = {}
        for i in range(a.runs):
            sides_now = [("ours", ours, bins + "/terok-shield", [], name_o)]
            if a.before:
                sides_now.append(("ours before", ours, os.path.abspath(a.before) + "/terok-shield", [], name_o))
            sides_now.append(("reference", ref, a.ref, ["--state-dir", w + "/state-ref"], name_r))
            for label, side, binary, pre, name in sides_now:
                runs = timed(side, [[binary] + pre + ["down", name] + ids[name], [binary] + pre + ["up", name] + ids[name]])
                if all(rc == 0 for _, rc, _ in runs):
                    postures[label].append((runs[0][0], runs[1][0]))
                else:
                    failed[label] = next(((err or ["exit %d" % rc])[-1] for _, rc, err in runs if rc != 0), "")
        for side, name in ((ours, name_o), (ref, name_r)):
            side.run(["podman", "rm", "-f", name], {"PATH": BASE_PATH}, check=False)
        results[mode] = (o, rr, ref_error, st.stdout.strip(), succ, postures, failed, op)

    print("allow latency, %d interleaved allows per side; median (p10-p90)" % a.runs)
    for mode, (o, rr, ref_error, ref_status, succ, postures, failed, op) in results.items():
        print("\n[%s]" % mode)
        print("  ours:      %s" % med(o))
        print("  ours, with a port (addr:443): %s, with/without = %.2f" % (med(op), statistics.median(op) / statistics.median(o)))
        if rr:
            print("  reference: %s" % med(rr))
            print("  ours/reference = %.3f" % (statistics.median(o) / statistics.median(rr)))
        if ref_error:
            print("  reference: FAILED (%s); its status for the container: %s" % (ref_error[:150], ref_status))
        if succ:
            print("  %d successive allows: first 100 %s, last 100 %s" % (len(succ), med(succ[:100]), med(succ[-100:])))
        for label, pairs in postures.items():
            if pairs:
                print("  %-11s down %s, up %s" % (label + ":", med([d for d, _ in pairs]), med([u for _, u in pairs])))
        for label, err in failed.items():
            print("  %-11s down/up FAILED (%s)" % (label + ":", err[:150]))
        if postures["ours"] and postures["reference"]:
            up = lambda k: statistics.median([u for _, u in postures[k]])
            print("  up: ours/reference = %.3f" % (up("ours") / up("reference")))
        if postures["ours"] and postures["ours before"]:
            up = lambda k: statistics.median([u for _, u in postures[k]])
            print("  up: ours/ours before = %.3f" % (up("ours") / up("ours before")))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
