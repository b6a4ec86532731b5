//! The generated rulesets in a real kernel: each posture loaded with the real `nft -f` into
//! a throwaway network namespace, listed back and verified, and real packets sent from that
//! namespace to test hosts in a second one. Needs root; see `support::can_run`.

mod support;

use support::{can_run, Lab, Netns, Probe, OTHER_PORT};
use support::{HOST_ALLOWED_V4, HOST_ALLOWED_V6, HOST_DENIED_V4, HOST_PRIVATE_V4, HOST_UNLISTED_V4, HOST_UNLISTED_V6};
use terok_shield_policy::IpNet;
use terok_shield_ruleset::{classify, render_table, ruleset_nft, verify, NetFacts, Posture, Seeds, ShieldState};

const POSTURES: [(Posture, ShieldState); 4] = [
    (Posture::Up, ShieldState::Up),
    (Posture::Down, ShieldState::Down),
    (Posture::Disengaged, ShieldState::Disengaged),
    (Posture::Quarantine, ShieldState::Quarantine),
];

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

fn slirp_with_ports() -> NetFacts {
    NetFacts::slirp4netns().with_loopback_ports(&[8080, 9000])
}

/// Probe `host` from the lab's client and check the outcome.
fn expect(lab: &Lab, host: &str, wait_s: u32, want: Probe, what: &str) {
    let got = lab.probe(host, wait_s);
    match (&want, &got) {
        (Probe::Rejected(_), Probe::Rejected(_)) => {}
        _ => assert_eq!(got, want, "{what}: {host}"),
    }
}

fn rejected() -> Probe {
    Probe::Rejected(String::new())
}

#[test]
fn every_posture_loads_lists_back_and_verifies() {
    if !can_run("every_posture_loads_lists_back_and_verifies") {
        return;
    }
    let ns = Netns::new("postures");
    for facts in [NetFacts::pasta(), slirp_with_ports(), slirp_with_ports().without_dns()] {
        for (posture, state) in POSTURES {
            let text = render_table(posture, &facts);
            ns.nft_check(&text).unwrap_or_else(|e| panic!("{posture:?}: nft -c refused the table: {e}"));
            let delete = if ns.nft(&["list", "tables"]).contains("terok_shield") {
                "delete table inet terok_shield\n"
            } else {
                ""
            };
            ns.nft_load(&format!("{delete}{text}"))
                .unwrap_or_else(|e| panic!("{posture:?}: nft refused the table: {e}"));
            let listing = ns.list_table();
            assert_eq!(verify(posture, &listing), Ok(()), "{posture:?} listing:\n{listing}");
            assert_eq!(classify(&listing), state, "{posture:?}");
        }
    }
}

#[test]
fn seeded_ruleset_loads_and_authored_elements_never_expire() {
    if !can_run("seeded_ruleset_loads_and_authored_elements_never_expire") {
        return;
    }
    let ns = Netns::new("seeds");
    let seeds = Seeds {
        t10_override: vec![net("10.222.222.10")],
        t20_security_deny: vec![net("198.51.100.66"), net("2001:db8:bad::/48")],
        t40_project_allow: vec![
            net("198.51.100.10"),
            net("198.51.100.10"),
            net("2001:db8:100::10"),
            net("198.51.100.128/25"),
            net("198.51.100.192/26"),
        ],
        ..Seeds::default()
    };
    ns.nft_load(&ruleset_nft(&NetFacts::pasta(), &seeds)).unwrap_or_else(|e| panic!("nft refused ruleset.nft: {e}"));
    let allow_v4 = ns.nft(&["list", "set", "inet", "terok_shield", "t40_project_allow_v4"]);
    assert!(allow_v4.contains("198.51.100.10"), "{allow_v4}");
    let nets_v4 = ns.nft(&["list", "set", "inet", "terok_shield", "t40_project_allow_net_v4"]);
    assert!(nets_v4.contains("198.51.100.128/25") && !nets_v4.contains("/26"), "{nets_v4}");
    let listing = ns.list_table();
    assert!(!listing.contains("expires"), "an authored element carries a timeout:\n{listing}");
    assert!(listing.contains("2001:db8:bad::/48") && listing.contains("10.222.222.10"));
    assert_eq!(classify(&listing), ShieldState::Up);
    // A runtime add to a tier set is permanent as well; only the DNS-learned set times out.
    ns.nft(&["add", "element", "inet", "terok_shield", "t40_project_allow_v4", "{ 198.51.100.20 }"]);
    ns.nft(&["add", "element", "inet", "terok_shield", "t40_dns_v4", "{ 198.51.100.30 }"]);
    let allow_v4 = ns.nft(&["list", "set", "inet", "terok_shield", "t40_project_allow_v4"]);
    assert!(allow_v4.contains("198.51.100.20") && !allow_v4.contains("expires"), "{allow_v4}");
    let learned = ns.nft(&["list", "set", "inet", "terok_shield", "t40_dns_v4"]);
    assert!(learned.contains("198.51.100.30 expires"), "{learned}");
}

#[test]
fn a_hundred_thousand_addresses_load_in_plain_sets() {
    if !can_run("a_hundred_thousand_addresses_load_in_plain_sets") {
        return;
    }
    let ns = Netns::new("big");
    let many: Vec<IpNet> =
        (0..100_000u32).map(|i| IpNet::host(std::net::Ipv4Addr::from(0x0B00_0000 + i * 3).into())).collect();
    let seeds = Seeds { t40_project_allow: many, ..Seeds::default() };
    ns.nft_load(&ruleset_nft(&NetFacts::pasta(), &seeds)).unwrap_or_else(|e| panic!("{e}"));
    let set = ns.nft(&["list", "set", "inet", "terok_shield", "t40_project_allow_v4"]);
    let elements = set
        .split(|c: char| c == ',' || c.is_whitespace() || c == '{' || c == '}')
        .filter(|t| t.parse::<std::net::Ipv4Addr>().is_ok())
        .count();
    assert_eq!(elements, 100_000);
}

/// The UP posture end to end: allowlisted IPv4 and IPv6 hosts answer (so neighbour
/// discovery gets through), everything else is rejected at once with an ICMP error.
#[test]
fn up_allows_only_the_allowlist_on_both_families() {
    if !can_run("up_allows_only_the_allowlist_on_both_families") {
        return;
    }
    let lab = Lab::new();
    expect(&lab, HOST_UNLISTED_V6, 3, Probe::Answered, "test hosts must answer before the shield is up");
    let lab = Lab::new(); // a fresh pair: no neighbour entries, no conntrack state
    let seeds = Seeds {
        t40_project_allow: vec![net(HOST_ALLOWED_V4), net(HOST_ALLOWED_V6), net(HOST_PRIVATE_V4), net(HOST_DENIED_V4)],
        t20_security_deny: vec![net(HOST_DENIED_V4)],
        ..Seeds::default()
    };
    let facts = NetFacts { dns: Some("198.18.1.2".parse().unwrap_or_else(|e| panic!("{e}"))), ..NetFacts::pasta() };
    lab.client.nft_load(&ruleset_nft(&facts, &seeds)).unwrap_or_else(|e| panic!("{e}"));
    expect(&lab, HOST_ALLOWED_V6, 3, Probe::Answered, "allowlisted IPv6 host");
    expect(&lab, HOST_ALLOWED_V4, 3, Probe::Answered, "allowlisted IPv4 host");
    for host in [HOST_UNLISTED_V4, HOST_UNLISTED_V6, HOST_DENIED_V4, HOST_PRIVATE_V4] {
        expect(&lab, host, 3, rejected(), "{host} must be rejected");
    }
    // Denied beats allowed, private beats allowed: both were in the allow seed above.
}

/// DOWN accepts unlisted hosts but still rejects private ranges and denied addresses;
/// DISENGAGED enforces nothing; QUARANTINE drops even allowlisted hosts.
#[test]
fn down_disengaged_and_quarantine_behave_as_specified() {
    if !can_run("down_disengaged_and_quarantine_behave_as_specified") {
        return;
    }
    let lab = Lab::new();
    let facts = NetFacts::pasta();
    let deny = Seeds { t20_security_deny: vec![net(HOST_DENIED_V4)], ..Seeds::default() };
    let seeds_text = |s: &Seeds| terok_shield_ruleset::seed_statements(s, 1000, 1000).join("\n");

    lab.client
        .nft_load(&format!("{}{}\n", render_table(Posture::Down, &facts), seeds_text(&deny)))
        .unwrap_or_else(|e| panic!("{e}"));
    expect(&lab, HOST_UNLISTED_V4, 3, Probe::Answered, "DOWN: unlisted v4");
    expect(&lab, HOST_UNLISTED_V6, 3, Probe::Answered, "DOWN: unlisted v6");
    expect(&lab, HOST_PRIVATE_V4, 3, rejected(), "DOWN: private");
    expect(&lab, HOST_DENIED_V4, 3, rejected(), "DOWN: denied");

    let replace = |p: Posture| format!("delete table inet terok_shield\n{}", render_table(p, &facts));
    lab.client.nft_load(&replace(Posture::Disengaged)).unwrap_or_else(|e| panic!("{e}"));
    expect(&lab, HOST_PRIVATE_V4, 3, Probe::Answered, "DISENGAGED: private");
    expect(&lab, HOST_DENIED_V4, 3, Probe::Answered, "DISENGAGED: formerly denied");

    let allow = Seeds { t40_project_allow: vec![net(HOST_ALLOWED_V4)], ..Seeds::default() };
    lab.client.nft_load(&replace(Posture::Quarantine)).unwrap_or_else(|e| panic!("{e}"));
    assert!(lab.client.nft_load(&seeds_text(&allow)).is_err(), "QUARANTINE has no sets to seed");
    expect(&lab, HOST_ALLOWED_V4, 1, Probe::TimedOut, "QUARANTINE: silently dropped");
}

/// Port-scoped rules in a real kernel: an address allowed on port 80 answers there and is
/// rejected on the other port it serves; a scoped deny closes one port of an allowed
/// network; the listing verifies and the admission interpreter reads it the same way.
#[test]
fn port_scoped_rules_open_only_their_ports() {
    if !can_run("port_scoped_rules_open_only_their_ports") {
        return;
    }
    use terok_shield_policy::{Ports, Proto};
    use terok_shield_ruleset::{Flow, Listing, Scoped};
    let lab = Lab::new();
    let tcp = |p| Ports::single(Proto::Tcp, p);
    let scoped = |host: &str, ports: &Ports| Scoped::of(net(host), ports).collect::<Vec<_>>();
    let mut allow = scoped(HOST_ALLOWED_V4, &tcp(80));
    allow.extend(scoped(HOST_ALLOWED_V6, &tcp(80)));
    allow.extend(scoped("198.51.100.0/24", &Ports::parse("80,8080/udp").unwrap_or_else(|e| panic!("{e}"))));
    allow.extend(scoped(HOST_UNLISTED_V4, &tcp(OTHER_PORT)));
    let seeds = Seeds {
        t40_project_allow_ports: allow,
        t40_project_allow: vec![net(HOST_DENIED_V4)],
        t20_security_deny_ports: scoped(HOST_DENIED_V4, &tcp(OTHER_PORT)),
        ..Seeds::default()
    };
    lab.client.nft_load(&ruleset_nft(&NetFacts::pasta(), &seeds)).unwrap_or_else(|e| panic!("{e}"));
    for host in [HOST_ALLOWED_V4, HOST_ALLOWED_V6] {
        expect(&lab, host, 3, Probe::Answered, "allowed on port 80");
        assert!(
            matches!(lab.probe_port(host, OTHER_PORT, 3), Probe::Rejected(_)),
            "{host}:{OTHER_PORT} must be rejected"
        );
    }
    assert!(matches!(lab.probe_port(HOST_UNLISTED_V4, 80, 3), Probe::Rejected(_)), "UDP 80 does not open TCP 80");
    assert_eq!(lab.probe_port(HOST_UNLISTED_V4, OTHER_PORT, 3), Probe::Answered);
    assert_eq!(lab.probe_port(HOST_DENIED_V4, 80, 3), Probe::Answered, "the whole allow");
    assert!(matches!(lab.probe_port(HOST_DENIED_V4, OTHER_PORT, 3), Probe::Rejected(_)), "the scoped deny wins");
    let listing = lab.client.list_table();
    assert_eq!(verify(Posture::Up, &listing), Ok(()), "{listing}");
    // The port-scoped entries went to the port maps: the /24 to the network map, the hosts
    // inside it to the address map, each with the union of its own and the /24's scope.
    assert!(listing.contains("198.51.100.0/24 : 0x5e40"), "{listing}");
    let hosts = listing.split("map t40_project_allow_porthost_v4").nth(1).unwrap_or_default();
    assert!(hosts.split('}').next().unwrap_or_default().contains(&format!("{HOST_ALLOWED_V4} : 0x5e40")), "{listing}");
    // A mark forged on the socket never reads as a scope: with every t40 scope id of the
    // table (0x5e400001…, one of them opens TCP 80), a host no port map holds is still
    // rejected on port 80; and a mark outside the scope range does not stop an allowed
    // destination.
    for id in 1..=4u32 {
        let forged = terok_shield_ruleset::portmap::MARK_BASE | 0x40 << 16 | id;
        match lab.probe_marked(HOST_UNLISTED_V6, 80, forged, 3) {
            // ICMPv6 administratively prohibited reads as EACCES.
            Probe::Rejected(e) => assert!(e.contains("Permission denied"), "admin-prohibited, not {e}"),
            other => panic!("mark {forged:#x} to {HOST_UNLISTED_V6}:80: {other:?}"),
        }
    }
    assert_eq!(lab.probe_marked(HOST_ALLOWED_V4, 80, 0x1234, 3), Probe::Answered, "a foreign mark is kept");
    let l = Listing::parse(&listing);
    let flow = |dst: &str, proto, port| Flow {
        proto,
        dst: dst.parse().unwrap_or_else(|e| panic!("{e}")),
        dport: Some(port),
        local: false,
    };
    assert!(l.admits(&flow(HOST_ALLOWED_V4, 6, 80)));
    assert!(!l.admits(&flow(HOST_ALLOWED_V4, 6, OTHER_PORT)));
    assert!(!l.admits(&flow(HOST_ALLOWED_V4, 17, 81)));
    assert!(l.admits(&flow(HOST_ALLOWED_V4, 17, 80)), "the /24 opens UDP 80");
    assert!(l.admits(&flow("198.51.100.99", 17, 8080)));
    assert!(l.admits(&flow(HOST_ALLOWED_V6, 6, 80)));
    assert!(!l.admits(&flow(HOST_DENIED_V4, 6, OTHER_PORT)));
}
