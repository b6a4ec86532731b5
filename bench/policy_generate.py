#!/usr/bin/env python3
"""Parse an N-entry policy and generate its UP ruleset with seeds: ours vs the Python
reference terok-shield 0.9.0, as whole processes, interleaved, same machine, same run.

    bench/policy_generate.py --ours target/release/terok-shield --ref-python /path/venv/bin/python

Prints, per size, the median and the spread (p10-p90) of each side and the ratio of medians.
Ours: `terok-shield preview --profiles big<N>` (parse, compose, seed, render, print).
Reference: the same steps through its own functions (parse_policy, EffectivePolicy,
RulesetBuilder.build_up, add_elements_dual), output discarded.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REF = r"""
import sys
from terok_shield.policy import parse_policy
from terok_shield.state import EffectivePolicy
from terok_shield.nft.rules import RulesetBuilder, add_elements_dual
entries = parse_policy(open(sys.argv[1]).read())
eff = EffectivePolicy(override=[], security_deny=[], provider_allow=[], project_allow=entries, live=[])
text = RulesetBuilder().build_up() + "\n" + add_elements_dual(eff.effective_ips())
sys.stdout.write(text)
"""


def policy(n):
    """n allow lines: every tenth a domain, every fiftieth a /28 network, the rest addresses."""
    lines = []
    for i in range(n):
        if i % 50 == 0:
            a = 0x0C000000 + i * 16
            lines.append("+%d.%d.%d.%d/28" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255))
        elif i % 10 == 0:
            lines.append("+host%d.example.com" % i)
        else:
            a = 0x0B000000 + i * 7
            lines.append("+%d.%d.%d.%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255))
    return "\n".join(lines) + "\n"


def timed(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit("failed: %s: %s" % (" ".join(cmd), r.stderr.decode(errors="replace")))
    return dt


def fmt(xs):
    xs = sorted(xs)
    q = statistics.quantiles(xs, n=10) if len(xs) >= 2 else [xs[0]] * 9
    return "%9.1f ms (p10 %.1f, p90 %.1f)" % (statistics.median(xs) * 1e3, q[0] * 1e3, q[-1] * 1e3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--ref-python", required=True)
    ap.add_argument("--sizes", default="10,1000,10000,100000")
    ap.add_argument("--runs", type=int, default=11)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tsh-bench-")
    os.makedirs(os.path.join(tmp, "profiles"))
    env = dict(os.environ, HOME=tmp, TEROK_SHIELD_CONFIG_DIR=tmp, TEROK_SHIELD_STATE_DIR=os.path.join(tmp, "state"))
    print("%-8s %-40s %-40s %s" % ("entries", "terok-shield (Rust)", "reference 0.9.0 (Python)", "ratio"))
    for n in [int(s) for s in a.sizes.split(",")]:
        path = os.path.join(tmp, "profiles", "big%d.txt" % n)
        with open(path, "w") as f:
            f.write(policy(n))
        ours_cmd = [a.ours, "preview", "--profiles", "big%d" % n]
        ref_cmd = [a.ref_python, "-I", "-c", REF, path]
        ours, ref = [], []
        for _ in range(a.runs):
            ours.append(timed(ours_cmd, env))
            ref.append(timed(ref_cmd, env))
        ratio = statistics.median(ref) / statistics.median(ours)
        print("%-8d %-40s %-40s %.0fx" % (n, fmt(ours), fmt(ref), ratio))


if __name__ == "__main__":
    main()
