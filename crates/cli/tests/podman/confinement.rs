//! What a shielded container reaches: only its allowlist, on both families, also with a
//! 100 000-entry allowlist.

use super::harness::*;

#[test]
fn rootful_container_reaches_only_its_allowlist_on_both_families() {
    shielded_probe(
        Who::Root,
        &[(ALLOWED_V4, true), (ALLOWED_V6, true), (UNLISTED_V4, false), (UNLISTED_V6, false), (PRIVATE_V4, false)],
    );
}

#[test]
fn rootless_container_reaches_only_its_allowlist_on_both_families() {
    shielded_probe(
        Who::User,
        &[(ALLOWED_V4, true), (ALLOWED_V6, true), (UNLISTED_V4, false), (UNLISTED_V6, false), (PRIVATE_V4, false)],
    );
}

/// The reference's rootless hook fails with "Message too long" past about 1 700 entries:
/// ours loads the table first and the elements in bounded batches.
#[test]
fn rootless_container_starts_with_a_hundred_thousand_entry_allowlist() {
    let Some(e) = env() else { return };
    ensure_setup(Who::User);
    let h = Home::new(Who::User);
    let mut text = String::with_capacity(100_001 * 14);
    for i in 0..100_000u32 {
        text.push_str(&format!("+{}\n", std::net::Ipv4Addr::from(0x0B00_0000 + i * 3)));
    }
    text.push_str(&format!("+{ALLOWED_V4}\n"));
    h.profile_file("big", &text);
    let name = format!("tsh-big-{}", std::process::id());
    let out = h.shield(&[
        "run",
        &name,
        "--profiles",
        "big",
        "--",
        "--rm",
        &e.image,
        "sh",
        "-c",
        PROBE,
        "probe",
        ALLOWED_V4,
        UNLISTED_V4,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    expect(&out.stdout, &[(ALLOWED_V4, true), (UNLISTED_V4, false)], "100 000 entries, rootless");
}
