#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the test prerequisites
# (tests/env/setup.sh), checks formatting and lints, then runs the unit and integration
# tests with the real-kernel tests required (they fail, not skip, when something is missing).
# Run as root from the repository root: sudo tests/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "tests/run-all.sh: run as root (sudo $0)" >&2; exit 1; }
# Under sudo, PATH is reset: use the invoking user's rustup toolchains (read only; cargo's
# own downloads stay in root's CARGO_HOME, so nothing root-owned lands in that home).
if ! command -v cargo >/dev/null && [ -n "${SUDO_USER:-}" ]; then
    user_home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
    if [ -x "$user_home/.cargo/bin/cargo" ]; then
        export PATH="$user_home/.cargo/bin:$PATH"
        [ -d "$user_home/.rustup" ] && export RUSTUP_HOME="$user_home/.rustup"
    fi
fi
command -v cargo >/dev/null || { echo "tests/run-all.sh: cargo not found; install a Rust toolchain (rustup) first" >&2; exit 1; }

bash tests/env/setup.sh
set -a; . /etc/terok-shield-test/env; set +a

echo "[test] cargo fmt --check"
cargo fmt --all -- --check
echo "[test] cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "[test] cargo test"
TEROK_SHIELD_REQUIRE_NETNS=1 cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/terok-shield-test.log
echo
grep -E '^test result:' /tmp/terok-shield-test.log | awk '{p+=$4; f+=$6} END {printf "total: %d passed, %d failed\n", p, f}'
