#!/usr/bin/env python3
"""DNS benchmarks, ours vs the Python reference terok-shield 0.9.0, same run.

    sudo bench/dns.py --ours target/release --ref /opt/tsh-ref/bin/terok-shield

Needs tests/env/setup.sh (test user, image, test DNS server) and the reference venv (see
docs/benchmarks.md). Everything runs in a private mount namespace whose /etc/resolv.conf
names the test DNS server, so no name leaves this machine.

1. prepare on a static tier (dnsmasq-static: a dnsmasq whose --version lacks nftset) for
   10, 100 and 1000 names (`b<i>.allowed.shield.test`), cold caches, rootless.
2. Names that follow answers: the shield's resolver (our default), our dnsmasq-live tier
   and the reference's dnsmasq, rootless (the reference's rootful containers cannot
   resolve). Per round the learned set is flushed, an allowed name is asked through the
   container's resolver and one TCP connect goes to the answered address at once: the
   answer's latency, the delay to the first packet let through, and whether that very first
   SYN got through (no retry). Then the helper's (or dnsmasq's) resident memory.
"""
import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from start_overhead import BASE_PATH, fmt, sides, workdir  # noqa: E402

NO_NFTSET = """#!/bin/bash
if [ "$1" = --version ]; then /usr/sbin/dnsmasq --version | sed 's/ nftset/ no-nftset/'; exit; fi
exec -a "$0" /usr/sbin/dnsmasq "$@"
"""

INNER = r'''
import socket, struct, subprocess, sys, time
flush, rounds = sys.argv[1], int(sys.argv[2])
def query(name):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    s.sendto(q, ("127.0.0.1", 53)); r = s.recv(512); s.close()
    return socket.inet_ntoa(r[-4:])
out = []
for k in range(rounds):
    subprocess.run(["nft", "flush", "set", "inet", "terok_shield", flush], check=True)
    t0 = time.perf_counter(); addr = query("q%d.allowed.shield.test" % k); t1 = time.perf_counter()
    tries = 0
    while True:
        tries += 1
        c = socket.socket(); c.settimeout(1)
        try:
            c.connect((addr, 80)); c.close(); break
        except OSError:
            c.close()
            if time.perf_counter() - t1 > 2: break
            time.sleep(0.0005)
    out.append((t1 - t0, time.perf_counter() - t1, tries))
print(repr(out))
'''


def in_test_dns_namespace():
    if os.environ.get("TSH_BENCH_NS") == "1":
        return
    os.environ["TSH_BENCH_NS"] = "1"
    os.execvp("unshare", ["unshare", "-m", "sh", "-c",
                          'mount --bind /run/tshield-hosts/resolv.conf /etc/resolv.conf && exec "$@"', "sh",
                          sys.executable] + sys.argv)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--rounds", type=int, default=1000)
    a = ap.parse_args()
    in_test_dns_namespace()
    tenv, user, image, uid, home, work, bins, refbin = workdir(a.ours, "tsh-bench-dns-")
    os.symlink("/usr/sbin/dnsmasq", os.path.join(refbin, "dnsmasq"))
    w, ours, ref, ours_hooks, ref_hooks = sides("rootless", work, tenv, user, uid, home, bins, refbin, a.ref)
    wrapper = os.path.join(w, "dnsmasq-static")
    with open(wrapper, "w") as f:
        f.write(NO_NFTSET)
    os.chmod(wrapper, 0o755)
    conf = os.path.join(w, "conf")

    def as_user(path):
        subprocess.run(["chown", "-R", "%s:" % user, path], check=True)

    print("1. prepare on the dnsmasq-static tier, cold caches (median, p10-p90 of %d):" % a.runs)
    for n in [int(x) for x in a.sizes.split(",")]:
        with open(os.path.join(conf, "profiles/names%d.txt" % n), "w") as f:
            f.writelines("+b%d-%d.allowed.shield.test\n" % (i, n) for i in range(n))
        # The reference reads the same config.yml and knows no `dns:` key: ours gets its own
        # copy of the config dir, with the tier pinned (ours defaults to its resolver).
        conf_ours = os.path.join(w, "conf-ours")
        shutil.rmtree(conf_ours, ignore_errors=True)
        shutil.copytree(conf, conf_ours)
        with open(os.path.join(conf, "config.yml"), "w") as f:
            f.write("dnsmasq_path: %s\n" % wrapper)
        with open(os.path.join(conf_ours, "config.yml"), "w") as f:
            f.write("dnsmasq_path: %s\ndns:\n  tier: auto\n" % wrapper)
        as_user(w)
        got = {"ours": [], "ref": []}
        for i in range(a.runs):
            for who in ("ours", "ref") if i % 2 == 0 else ("ref", "ours"):
                state = os.path.join(w, "st-%s-%d-%d" % (who, n, i))
                os.makedirs(state)
                as_user(state)
                name = "p%d-%d" % (n, i)
                if who == "ours":
                    dt, r = ours.run([bins + "/terok-shield", "prepare", name, "--profiles", "names%d" % n, "--json"],
                                     {"TEROK_SHIELD_STATE_DIR": state, "TEROK_SHIELD_CONFIG_DIR": conf_ours})
                else:
                    dt, r = ref.run([a.ref, "--state-dir", state, "prepare", name, "--profiles", "names%d" % n, "--json"])
                got[who].append(dt)
                if i == 0:
                    tier = [x for x in json.loads(r.stdout) if "dns_tier=" in x]
                    print("   %s: %s" % (who, tier[0] if tier else "?"), file=sys.stderr)
        m = lambda xs: sorted(xs)[len(xs) // 2]
        print("   %5d names: ours %s, reference %s, ratio %.3f" % (n, fmt(got["ours"]), fmt(got["ref"]),
                                                                 m(got["ours"]) / m(got["ref"])))
    os.remove(os.path.join(conf, "config.yml"))

    print("2. names that follow answers: DNS answer -> first SYN (%d rounds, learned set flushed each):" % a.rounds)
    with open(os.path.join(conf, "profiles/live.txt"), "w") as f:
        f.write("+allowed.shield.test\n")
    as_user(w)
    cases = (("ours, resolver", ours, ours_hooks, "t40_dns_v4", None, "reader.pid"),
             ("ours, dnsmasq-live", ours, ours_hooks, "t40_dns_v4", "dns:\n  tier: dnsmasq-live\n", "dnsmasq.pid"),
             ("reference", ref, ref_hooks, "t40_project_allow_v4", None, "dnsmasq.pid"))
    for i, (who, side, hooks, flush, config, helper) in enumerate(cases):
        name = "live-%d" % i
        if config:
            with open(os.path.join(conf, "config.yml"), "w") as f:
                f.write(config)
            as_user(w)
        if side is ours:
            state = os.path.join(w, "state-ours-%d" % i)
            os.makedirs(state)
            as_user(state)
            _, r = ours.run([bins + "/terok-shield", "prepare", name, "--profiles", "live", "--json"],
                            {"TEROK_SHIELD_STATE_DIR": state})
            bundle = os.path.join(state, "containers", name)
        else:
            _, r = ref.run([a.ref, "--state-dir", w + "/state-ref", "prepare", name, "--profiles", "live", "--json"])
            bundle = os.path.join(w, "state-ref", "containers", name)
        if config:
            os.remove(os.path.join(conf, "config.yml"))
        flags = json.loads(r.stdout)
        side.run(["podman", "run", "-d", "--hooks-dir", hooks] + flags + [image, "sleep", "600"], {"PATH": BASE_PATH})
        _, r = side.run(["podman", "inspect", "--format", "{{.State.Pid}}", name], {"PATH": BASE_PATH})
        pid = r.stdout.strip()
        res = subprocess.run(["nsenter", "-t", pid, "-n", sys.executable, "-c", INNER, flush, str(a.rounds)],
                             capture_output=True, text=True)
        rss = helper_rss(os.path.join(bundle, helper))
        side.run(["podman", "rm", "-f", name], {"PATH": BASE_PATH}, check=False)
        if res.returncode != 0:
            print("   %s: failed: %s" % (who, res.stderr.strip().splitlines()[-1:]))
            continue
        rows = eval(res.stdout)  # our own repr() of floats and ints
        dns = [r[0] for r in rows]
        first = [r[1] for r in rows]
        at_once = sum(1 for r in rows if r[2] == 1)
        print("   %s: DNS answer %s, answer -> first allowed packet %s, first SYN through %d/%d (%.1f %%), %s RSS %s" % (
            who, fmt(dns, 1e6, "us"), fmt(first, 1e6, "us"), at_once, len(rows), 100.0 * at_once / len(rows),
            helper.split(".")[0], rss))


def helper_rss(pid_file):
    """VmRSS of the process in `pid_file`, as text."""
    try:
        pid = open(pid_file).read().strip()
        for line in open("/proc/%s/status" % pid):
            if line.startswith("VmRSS:"):
                return "%.1f MiB" % (int(line.split()[1]) / 1024)
    except OSError:
        pass
    return "?"


if __name__ == "__main__":
    main()
