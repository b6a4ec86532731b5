#!/usr/bin/env bash
# Prepare this machine for terok-shield's whole test suite. Run as root; idempotent.
#
#  1. Debian packages: the runtime (podman, nft, dnsmasq, runc, slirp4netns, busybox-static, …)
#  2. the unprivileged test user for rootless podman (subordinate ids, /dev/net/tun)
#  3. a test containers.conf for this host's podman quirks (runc, cgroupfs, file events,
#     ulimits within the hard limit, netavark), under /etc/terok-shield-test/
#  4. the test image localhost/tshield-busybox, built from busybox-static and imported with
#     `podman import`, for root and for the test user; a dual-stack netavark network
#  5. the test-host namespace "tshield-hosts": HTTP test hosts on documentation addresses and
#     a test DNS server, routed from the host over a veth pair on a 198.18.0.0/15 transit link.
#
# Nothing here reaches beyond this machine: the test hosts live in a namespace of our own.
set -euo pipefail

TEST_USER=${TEROK_SHIELD_TEST_USER:-tshield-test}
CONF_DIR=/etc/terok-shield-test
RUN_DIR=/run/tshield-hosts
NS=tshield-hosts
IMAGE=localhost/tshield-busybox:latest
NETWORK=tshield-dual

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (sudo $0)"

# 1. Packages ---------------------------------------------------------------------------
# iptables: netavark 1.4 (Debian 12) sets up container NAT with it and fails with "No such file
# or directory" without it.
# gcc and libc6-dev: the linker and C runtime cargo builds with (and crates that build C).
PKGS=(podman nftables dnsmasq-base runc uidmap slirp4netns busybox-static iproute2 sudo dnsutils conntrack netavark aardvark-dns iptables gcc libc6-dev)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Test user ----------------------------------------------------------------------------
if ! id "$TEST_USER" >/dev/null 2>&1; then
    say "creating test user $TEST_USER"
    useradd --create-home --shell /bin/bash "$TEST_USER"
fi
TEST_UID=$(id -u "$TEST_USER")
grep -q "^$TEST_USER:" /etc/subuid || usermod --add-subuids 200000-265535 "$TEST_USER"
grep -q "^$TEST_USER:" /etc/subgid || usermod --add-subgids 200000-265535 "$TEST_USER"
chmod 0666 /dev/net/tun
# No standing sudo rule for the test user (`install` as root would make it root): the test
# of `setup --root` through sudo grants one for its own run and removes it. An older
# setup's rule goes.
rm -f /etc/sudoers.d/terok-shield-test
mkdir -p "/run/user/$TEST_UID" && chown "$TEST_USER:" "/run/user/$TEST_UID" && chmod 0700 "/run/user/$TEST_UID"
loginctl enable-linger "$TEST_USER" >/dev/null 2>&1 || true

# 3. Test containers.conf ----------------------------------------------------------------
mkdir -p "$CONF_DIR"
hard_nofile=$(ulimit -Hn); hard_nproc=$(ulimit -Hu)
nofile=$(( hard_nofile < 20000 ? hard_nofile : 20000 )); nproc=$(( hard_nproc < 1000 ? hard_nproc : 1000 ))
# This host's podman quirks (runc, cgroupfs, file events, ulimits within the hard limit).
podman_quirks() {
    cat <<CONF
# Written by tests/env/setup.sh for this host's podman; not product configuration.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
}
{ podman_quirks; cat <<CONF

[network]
network_backend = "netavark"
default_network = "tshield-dual"
CONF
} > "$CONF_DIR/containers.conf"
chmod 0644 "$CONF_DIR/containers.conf"
cat > "$CONF_DIR/env" <<ENV
CONTAINERS_CONF=$CONF_DIR/containers.conf
TEROK_SHIELD_TEST_USER=$TEST_USER
TEROK_SHIELD_TEST_IMAGE=$IMAGE
TEROK_SHIELD_TEST_NETWORK=$NETWORK
TEROK_SHIELD_TEST_HOSTS_NS=$NS
ENV
export CONTAINERS_CONF=$CONF_DIR/containers.conf
# The test user's podman reads its own containers.conf (CONTAINERS_CONF would make podman
# ignore it, and `terok-shield setup` registers its hooks dir there). Written once; setup
# edits it later, keeping these lines and comments.
TEST_HOME=$(getent passwd "$TEST_USER" | cut -d: -f6)
USER_CONF=$TEST_HOME/.config/containers/containers.conf
if [ ! -s "$USER_CONF" ]; then
    install -d -o "$TEST_USER" -g "$TEST_USER" -m 0755 "$TEST_HOME/.config" "$TEST_HOME/.config/containers"
    podman_quirks > "$USER_CONF"
    chown "$TEST_USER:" "$USER_CONF"
fi
as_user() { runuser -u "$TEST_USER" -- env -i HOME="$TEST_HOME" USER="$TEST_USER" \
    PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR="/run/user/$TEST_UID" "$@"; }

# 4. Test image and network ------------------------------------------------------------
rootfs_tar=$CONF_DIR/busybox-rootfs.tar
if [ ! -s "$rootfs_tar" ]; then
    say "building the busybox rootfs"
    tmp=$(mktemp -d)
    mkdir -p "$tmp"/{bin,etc,tmp,proc,sys,dev,root}
    cp /bin/busybox "$tmp/bin/busybox"
    for applet in $(/bin/busybox --list); do [ -e "$tmp/bin/$applet" ] || ln -s busybox "$tmp/bin/$applet"; done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$tmp/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' > "$tmp/etc/group"
    chmod 1777 "$tmp/tmp"
    tar -C "$tmp" -cf "$rootfs_tar" .
    rm -rf "$tmp"
    chmod 0644 "$rootfs_tar"
fi
podman image exists "$IMAGE" || { say "importing $IMAGE (root)"; podman import --change 'CMD ["/bin/sh"]' "$rootfs_tar" "$IMAGE" >/dev/null; }
as_user podman image exists "$IMAGE" || { say "importing $IMAGE ($TEST_USER)"; as_user podman import --change 'CMD ["/bin/sh"]' "$rootfs_tar" "$IMAGE" >/dev/null; }
# The test containers.conf names this network as podman's default, and podman then reports
# the default network as existing before it is created: test for its file, and create it
# without that configuration (podman refuses the name otherwise).
[ -s "/etc/containers/networks/$NETWORK.json" ] || { say "creating the dual-stack network $NETWORK"; printf '[network]\nnetwork_backend = "netavark"\n' > "$CONF_DIR/create-network.conf"; CONTAINERS_CONF="$CONF_DIR/create-network.conf" podman network create --ipv6 --subnet 10.89.222.0/24 --subnet fd00:89:222::/64 "$NETWORK" >/dev/null; }

# 5. Test hosts ----------------------------------------------------------------------------
# 169.254.77.10 is one link-local test host (a /32, routed only to the test namespace) for
# the hard-deny floor; nothing else of 169.254.0.0/16 is touched.
HOSTS_V4=(198.51.100.10 198.51.100.11 198.51.100.12 198.51.100.53 10.222.222.10 169.254.77.10)
HOSTS_V6=(2001:db8:100::10 2001:db8:100::11 2001:db8:100::53)
# A machine restored from a snapshot can keep /run/netns entries whose namespaces are gone
# (a plain file where a bind mount was): `ip netns list` then fails on them. Test the
# namespace by entering it, and replace a stale one.
if ! ip netns exec "$NS" true 2>/dev/null; then
    if [ -e "/run/netns/$NS" ]; then
        say "replacing the stale test-host namespace $NS"
        ip netns delete "$NS" 2>/dev/null || { umount "/run/netns/$NS" 2>/dev/null; rm -f "/run/netns/$NS"; }
    fi
    ip link delete tsh-host0 2>/dev/null || true
    say "creating the test-host namespace $NS"
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    ip link add tsh-host0 type veth peer name tsh-hosts0 netns "$NS"
    ip link set tsh-host0 up
    ip -n "$NS" link set tsh-hosts0 up
    ip addr add 198.18.0.1/30 dev tsh-host0
    ip addr add 2001:db8:ff00::1/64 dev tsh-host0 nodad
    ip -n "$NS" addr add 198.18.0.2/30 dev tsh-hosts0
    ip -n "$NS" addr add 2001:db8:ff00::2/64 dev tsh-hosts0 nodad
    ip -n "$NS" route add default via 198.18.0.1
    ip -n "$NS" -6 route add default via 2001:db8:ff00::1
fi
for a in "${HOSTS_V4[@]}"; do ip -n "$NS" addr replace "$a/32" dev lo; done
for a in "${HOSTS_V6[@]}"; do ip -n "$NS" addr replace "$a/128" dev lo nodad; done
ip route replace 198.51.100.0/24 via 198.18.0.2
ip route replace 10.222.222.0/24 via 198.18.0.2
ip route replace 169.254.77.10/32 via 198.18.0.2
ip -6 route replace 2001:db8:100::/64 via 2001:db8:ff00::2
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

mkdir -p "$RUN_DIR/www"
echo tshield-ok > "$RUN_DIR/www/index.html"
# A pid file is trusted only while its process is still the server it names (a restored
# machine may have handed the pid to something else) and runs in the test namespace.
alive() { # PIDFILE PROGRAM
    local pid; pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
    [ "$(readlink "/proc/$pid/ns/net")" = "$(ip netns exec "$NS" readlink /proc/self/ns/net)" ]
}
if ! alive "$RUN_DIR/httpd.pid" httpd; then
    ip netns exec "$NS" busybox httpd -f -p 80 -h "$RUN_DIR/www" >/dev/null 2>&1 &
    echo $! > "$RUN_DIR/httpd.pid"
fi
if ! alive "$RUN_DIR/echo.pid" "nc -ll"; then
    # A persistent echo server on port 7000: long-lived connections for revocation tests.
    ip netns exec "$NS" busybox nc -ll -p 7000 -e /bin/cat >/dev/null 2>&1 &
    echo $! > "$RUN_DIR/echo.pid"
fi
# Tests add their own names as hosts files in dns-hosts/ (read on change, so a test can
# move a name to another address between two lookups).
mkdir -p "$RUN_DIR/dns-hosts"
if alive "$RUN_DIR/dnsmasq.pid" dnsmasq && ! tr '\0' ' ' < "/proc/$(cat "$RUN_DIR/dnsmasq.pid")/cmdline" | grep -q -- --hostsdir; then
    kill "$(cat "$RUN_DIR/dnsmasq.pid")"; sleep 0.3
fi
if ! alive "$RUN_DIR/dnsmasq.pid" dnsmasq; then
    # Test names: allowed/unlisted/denied/private hosts (each with its subdomains).
    ip netns exec "$NS" dnsmasq --no-resolv --no-hosts --bind-interfaces --hostsdir="$RUN_DIR/dns-hosts" \
        --listen-address=198.51.100.53,2001:db8:100::53 --except-interface=tsh-hosts0 \
        --address=/allowed.shield.test/198.51.100.10 --address=/allowed.shield.test/2001:db8:100::10 \
        --address=/unlisted.shield.test/198.51.100.11 --address=/unlisted.shield.test/2001:db8:100::11 \
        --address=/denied.shield.test/198.51.100.12 --address=/private.shield.test/10.222.222.10 \
        --pid-file="$RUN_DIR/dnsmasq.pid" --log-queries --log-facility="$RUN_DIR/dnsmasq.log" --user=root
fi
cat > "$RUN_DIR/resolv.conf" <<R
nameserver 198.51.100.53
R

# Rootless podman keeps one user and mount namespace per user alive (its pause process), and
# slirp4netns, started inside it, forwards container DNS to the resolv.conf it sees there.
# Create that namespace where /etc/resolv.conf names the test DNS server, so the test user's
# containers resolve through it (and never through the machine's own resolver).
if ! as_user podman unshare cat /etc/resolv.conf 2>/dev/null | grep -q "^nameserver 198.51.100.53"; then
    say "re-creating $TEST_USER's rootless podman namespace with the test resolver"
    as_user podman system migrate >/dev/null 2>&1 || true
    unshare -m sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh "$RUN_DIR/resolv.conf" \
        runuser -u "$TEST_USER" -- env -i HOME="$TEST_HOME" USER="$TEST_USER" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        XDG_RUNTIME_DIR="/run/user/$TEST_UID" podman unshare true
    as_user podman unshare cat /etc/resolv.conf | grep -q "^nameserver 198.51.100.53" \
        || die "$TEST_USER's rootless podman namespace does not see the test resolver"
fi

# Smoke checks: the test hosts answer HTTP and DNS from the host, and a test container runs
# rootful and rootless and reaches a test host (no shield involved).
for _ in $(seq 50); do busybox netstat -ltn 2>/dev/null | grep -q . && break; sleep 0.1; done
page() { printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 3 "$1" 80 2>&1 | tail -n 1; }
for h in 198.51.100.10 2001:db8:100::10 10.222.222.10 169.254.77.10; do
    for _ in $(seq 30); do [ "$(page "$h")" = tshield-ok ] && break; sleep 0.1; done
    [ "$(page "$h")" = tshield-ok ] || die "test host $h does not answer HTTP"
done
[ "$(dig +short +time=2 +tries=1 @198.51.100.53 allowed.shield.test A)" = 198.51.100.10 ] || die "test DNS server does not answer"
[ "$(dig +short +time=2 +tries=1 @2001:db8:100::53 allowed.shield.test AAAA)" = 2001:db8:100::10 ] || die "test DNS server does not answer over IPv6"
container_probe() { # WHO NETWORK HOST
    local who=$1 net=$2 host=$3 out
    local cmd="printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $host 80 | tail -n 1"
    if [ "$who" = root ]; then
        out=$(podman run --rm --network "$net" "$IMAGE" sh -c "$cmd" 2>"$RUN_DIR/smoke.err") || true
    else
        out=$(cd / && as_user podman run --rm --network "$net" "$IMAGE" sh -c "$cmd" 2>"$RUN_DIR/smoke.err") || true
    fi
    [ "$out" = tshield-ok ] || die "$who test container on $net cannot reach $host: $out $(tail -n 3 "$RUN_DIR/smoke.err")"
}
container_probe root "$NETWORK" 198.51.100.10
container_probe root "$NETWORK" 2001:db8:100::10
container_probe "$TEST_USER" slirp4netns 198.51.100.10
say "ready: user $TEST_USER, image $IMAGE, network $NETWORK, test hosts in netns $NS (env in $CONF_DIR/env)"
