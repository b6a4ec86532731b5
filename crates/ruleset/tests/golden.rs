//! Golden rulesets: one snapshot per posture and network mode, and the verifier's verdicts
//! on what the generator produced. The same texts are loaded with the real `nft` by the
//! shield crate's netns tests.

use terok_shield_policy::IpNet;
use terok_shield_ruleset::{classify, render_table, ruleset_nft, verify, NetFacts, Posture, Seeds, ShieldState};

const POSTURES: [Posture; 4] = [Posture::Up, Posture::Down, Posture::Disengaged, Posture::Quarantine];

fn slirp_with_ports() -> NetFacts {
    NetFacts::slirp4netns().with_loopback_ports(&[8080, 9000])
}

#[test]
fn pasta_tables() {
    for p in POSTURES {
        insta::assert_snapshot!(format!("pasta_{}", p.label()), render_table(p, &NetFacts::pasta()));
    }
}

/// With the shield's own resolver no DNS rule is there at all: port 53 to any upstream is
/// refused like any other destination.
#[test]
fn resolver_tables_have_no_dns_rule() {
    for p in POSTURES {
        let text = render_table(p, &slirp_with_ports().without_dns());
        assert!(!text.contains("dport 53"), "{}", p.label());
        insta::assert_snapshot!(format!("resolver_{}", p.label()), text);
    }
}

#[test]
fn slirp4netns_tables_with_loopback_ports() {
    for p in POSTURES {
        insta::assert_snapshot!(format!("slirp_ports_{}", p.label()), render_table(p, &slirp_with_ports()));
    }
}

#[test]
fn ruleset_nft_with_seeds() {
    let n = |s: &str| s.parse::<IpNet>().unwrap_or_else(|e| panic!("{e}"));
    let seeds = Seeds {
        t10_override: vec![n("10.222.222.10")],
        t20_security_deny: vec![n("198.51.100.66"), n("2001:db8:bad::/48")],
        t40_project_allow: vec![n("198.51.100.10"), n("2001:db8:100::10"), n("198.51.100.128/25")],
        t40_project_allow_ports: terok_shield_ruleset::Scoped::of(
            n("198.51.100.20"),
            &terok_shield_policy::Ports::parse("443,8000-8100").unwrap_or_else(|e| panic!("{e}")),
        )
        .collect(),
        ..Seeds::default()
    };
    insta::assert_snapshot!("ruleset_nft_seeded", ruleset_nft(&NetFacts::pasta(), &seeds));
}

/// The generator's own text classifies as its posture (the real listing is checked in the
/// netns tests, where nft reformats it).
#[test]
fn generated_tables_verify_as_their_posture() {
    for facts in [NetFacts::pasta(), slirp_with_ports()] {
        for (p, state) in POSTURES.into_iter().zip([
            ShieldState::Up,
            ShieldState::Down,
            ShieldState::Disengaged,
            ShieldState::Quarantine,
        ]) {
            let text = render_table(p, &facts);
            assert_eq!(verify(p, &text), Ok(()), "{p:?}");
            assert_eq!(classify(&text), state, "{p:?}");
        }
    }
    assert_eq!(classify(""), ShieldState::Offline);
    assert_eq!(classify("table inet terok_shield {\n}\n"), ShieldState::Error);
}

#[test]
fn tampered_tables_fail_verification() {
    let up = render_table(Posture::Up, &NetFacts::pasta());
    let cases = [
        ("policy drop;\n        oifname", "policy accept;\n        oifname", "chain output has policy accept"),
        (
            "        ip daddr 10.0.0.0/8 log",
            "        ip daddr 10.0.0.0/9 log",
            "no reject rule for private range 10.0.0.0/8",
        ),
        ("    set t40_dns_v6 {", "    set t40_xxx_v6 {", "set t40_dns_v6 missing"),
    ];
    for (from, to, expect) in cases {
        let broken = up.replacen(from, to, 1);
        assert_ne!(broken, up, "{from} not found");
        let err = verify(Posture::Up, &broken).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(expect), "{expect}: {err}");
    }
    // The terminal rule moved above the allow tiers.
    let terminal =
        "        log group 100 prefix \"TEROK_SHIELD_BLOCKED: \" counter reject with icmpx admin-prohibited\n";
    let moved = up.replacen(terminal, "", 1).replacen(
        "        ip daddr 169.254.0.0/16",
        &format!("{terminal}        ip daddr 169.254.0.0/16"),
        1,
    );
    assert!(verify(Posture::Up, &moved).is_err());
    // An accept-all rule slipped into a disengaged table is fine, a reject is not.
    let dis = render_table(Posture::Disengaged, &NetFacts::pasta());
    let with_reject =
        dis.replacen("        ct state new", "        ip daddr 10.0.0.0/8 reject\n        ct state new", 1);
    assert!(verify(Posture::Disengaged, &with_reject).is_err());
}
