//! Policy parsing and ruleset generation at 10 to 100 000 entries.
//! Run: `cargo bench -p terok-shield-ruleset --bench generate`.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use terok_shield_policy::parse_policy;
use terok_shield_policy::tiers::TierSet;
use terok_shield_ruleset::{ruleset_nft, NetFacts, Seeds};

/// A policy text of `n` allow lines: every tenth a domain, every fiftieth a network.
fn policy_text(n: usize) -> String {
    let mut s = String::with_capacity(n * 24);
    for i in 0..n {
        let a = Ipv4Addr::from(0x0B00_0000u32 + (i as u32) * 7);
        match i % 50 {
            0 => s.push_str(&format!("+{}/28\n", Ipv4Addr::from(0x0C00_0000u32 + (i as u32) * 16))),
            x if x % 10 == 0 => s.push_str(&format!("+host{i}.example.com\n")),
            _ => s.push_str(&format!("+{a}\n")),
        }
    }
    s
}

fn parse_and_generate(text: &str) -> String {
    let entries = parse_policy(text, "bench").unwrap_or_default();
    let tiers = TierSet { project_allow: entries, ..TierSet::default() };
    let effective = tiers.effective();
    let seeds = Seeds { t40_project_allow: effective.t40_seed(&[]), ..Seeds::default() };
    ruleset_nft(&NetFacts::pasta(), &seeds)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_and_generate");
    group.sample_size(20);
    for n in [10usize, 1_000, 10_000, 100_000] {
        let text = policy_text(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, t| {
            b.iter(|| parse_and_generate(black_box(t)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
