//! `decide` cost at 10, 10 000 and 100 000 entries (exact hits, wildcard hits, misses), the
//! cost of loading and compiling 100 000 entries from YAML: the decision must not grow with the
//! size of the allowlist, and the SSRF guard's cost per resolved address (plain IPv4 and IPv6,
//! and IPv6 forms that carry IPv4 addresses).
// criterion_group!/criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

use std::fmt::Write as _;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use egress_gateway::config::gateway::Mode;
use egress_gateway::decide::{
    AddressGuard, Inspection, Policy, Rule, RulePort, Upstream, Visibility,
};
use egress_gateway::names::{Host, HostPattern, Namespace, Target};

const SIZES: [usize; 3] = [10, 10_000, 100_000];

/// A policy with `n` entries spread over 100 namespaces; every tenth entry is a wildcard.
fn policy(n: usize) -> Policy {
    let mut policy = Policy::new(Mode::Enforce, []);
    for i in 0..n {
        let namespace = Namespace::parse(&format!("ns{}", i % 100)).expect("valid namespace");
        let host = if i % 10 == 0 {
            format!("*.svc{i}.example.com")
        } else {
            format!("api{i}.example.com")
        };
        let rule = Rule {
            annotations: None,
            namespace: namespace.clone(),
            name: format!("entry{i}").into(),
            label: format!("{namespace}/entry{i}").into(),
            file: "bench.yaml".into(),
            ports: vec![RulePort {
                number: 443,
                name: Some("https".into()),
                inspection: Inspection::Sni,
                target_port: None,
            }],
            upstream: Upstream::AsRequested,
        };
        let pattern = HostPattern::parse(&host).expect("valid host");
        policy.add(
            rule,
            &Visibility::Namespaces(vec![namespace]),
            &[pattern],
            &[],
        );
    }
    policy
}

fn target(host: &str) -> Target {
    Target {
        host: Host::parse(host).expect("valid host"),
        port: 443,
    }
}

fn bench_decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for size in SIZES {
        let policy = policy(size);
        // Entry 1 (exact) and entry 0 (wildcard) both live in namespace ns0/ns1.
        let exact = target("api1.example.com");
        let wildcard = target("deep.a.svc0.example.com");
        let miss = target("nowhere.example.org");
        group.bench_with_input(BenchmarkId::new("exact_hit", size), &size, |b, _| {
            b.iter(|| black_box(policy.decide(black_box("ns1"), black_box(&exact)).verdict))
        });
        group.bench_with_input(BenchmarkId::new("wildcard_hit", size), &size, |b, _| {
            b.iter(|| {
                black_box(
                    policy
                        .decide(black_box("ns0"), black_box(&wildcard))
                        .verdict,
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("miss", size), &size, |b, _| {
            b.iter(|| black_box(policy.decide(black_box("ns1"), black_box(&miss)).verdict))
        });
    }
    group.finish();
}

/// A config directory with `n` ServiceEntries in 100 namespace folders, 1 000 per file.
fn config_dir(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("gateway.yaml"),
        "serviceentries: {dir: se}\n",
    )
    .expect("write");
    let mut files: Vec<String> = vec![String::new(); n.div_ceil(1000)];
    for i in 0..n {
        let host = if i % 10 == 0 {
            format!("*.svc{i}.example.com")
        } else {
            format!("api{i}.example.com")
        };
        let resolution = if i % 10 == 0 { "NONE" } else { "DNS" };
        let _ = write!(
            files[i / 1000],
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: e{i}, namespace: ns{}}}\nspec:\n  hosts: [\"{host}\"]\n  ports: [{{number: 443, name: https, protocol: TLS}}]\n  resolution: {resolution}\n",
            i % 100
        );
    }
    let se = dir.path().join("se");
    std::fs::create_dir(&se).expect("mkdir");
    for (i, text) in files.iter().enumerate() {
        std::fs::write(se.join(format!("f{i}.yaml")), text).expect("write");
    }
    dir
}

fn bench_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("policy_100k_entries", |b| {
        b.iter(|| black_box(policy(100_000)))
    });
    let dir = config_dir(100_000);
    group.bench_function("load_and_compile_100k_entries", |b| {
        b.iter(|| {
            let loaded = egress_gateway::app::load(dir.path(), 1).expect("valid config");
            black_box(loaded.1.generation)
        })
    });
    group.finish();
}

fn bench_guard(c: &mut Criterion) {
    let mut group = c.benchmark_group("guard");
    let guard = AddressGuard::new(&["198.51.100.0/24".parse().expect("cidr")], &[]);
    for (name, addr) in [
        ("public_v4", "93.184.215.14"),
        ("loopback_v4", "127.0.0.1"),
        ("public_v6", "2606:4700::1111"),
        ("nat64_metadata", "64:ff9b::a9fe:a9fe"),
        ("teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),
    ] {
        let addr: std::net::IpAddr = addr.parse().expect("address");
        group.bench_function(name, |b| {
            b.iter(|| black_box(guard.is_forbidden(black_box(addr))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decide, bench_compile, bench_guard);
criterion_main!(benches);
