//! Real podman, rootful and rootless, against the test hosts of `tests/env/setup.sh`
//! (namespace `tshield-hosts`): what a shielded container reaches, restart behaviour,
//! fail-closed starts proven by a marker file, and setup/uninstall.
//!
//! Rootful tests run as root with `CONTAINERS_CONF` from `/etc/terok-shield-test/env`;
//! rootless ones run as the test user through `runuser`, with the binaries copied to a
//! world-readable directory.

mod harness;

mod confinement;
mod control;
mod dns;
mod floors;
mod lifecycle;
mod observe;
mod ports;
mod resolver;
mod setup;
mod streams;
mod terminal;
