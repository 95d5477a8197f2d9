//! ns per decision with 10, 1k and 100k rules: the index (`decide`) next to
//! the plain scan (`decide_linear`) it must agree with; queries that match
//! no rule (the whole index is searched) and queries that each match one.
//!
//! The rule sets look like a real machine's: per-program rules (one program
//! in 20 rules), each to an address and a port or port range, plus a few
//! machine-wide rules; queries hit programs with and without rules.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use netev_event::{Family, Op, Proto};
use netev_rules::{fields::rule_from_fields, Policy, Query, Rule, RuleSet};

fn rules(n: usize) -> Vec<Rule> {
    (0..n)
        .map(|i| {
            let exe = format!("/usr/bin/app{}", i / 20);
            let addr = format!("10.{}.{}.0/24", (i / 256) % 256, i % 256);
            let ports = if i % 3 == 0 {
                format!("{}-{}", 1000 + i % 500, 1100 + i % 500)
            } else {
                format!("{}", 1 + i % 60000)
            };
            let action = if i % 2 == 0 { "allow" } else { "deny" };
            let mut f = vec![
                ("action", action.to_string()),
                ("ops", "connect,sendmsg".to_string()),
                ("addr", addr),
                ("ports", ports),
            ];
            if i % 50 != 0 {
                f.push(("exe", exe));
            }
            let mut r = rule_from_fields(
                f.iter().map(|(k, v)| (*k, v.as_str())),
                chrono::Utc::now(),
                &|_| None,
            )
            .unwrap();
            r.id = i as u32 + 1;
            r
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    for n in [10usize, 1000, 100_000] {
        let set = RuleSet::new(rules(n), Policy::default());
        let exes: Vec<String> = (0..64)
            .map(|i| format!("/usr/bin/app{}", (i * 7919) % (n / 20 + 2)))
            .collect();
        let queries: Vec<Query<'_>> = (0..64)
            .map(|i| Query {
                op: Op::Connect,
                family: Family::INET,
                proto: Proto::TCP,
                exe: Some(exes[i].as_str()),
                uid: 1000,
                addr: Some(
                    format!("10.{}.{}.7", i % 7, (i * 13) % 256)
                        .parse()
                        .unwrap(),
                ),
                port: Some(1 + ((i * 997) % 60000) as u16),
                path: None,
            })
            .collect();
        // Queries that each match a rule (the one they were made from, or an
        // earlier one): the search ends on a hit instead of falling through.
        let hit_exes: Vec<String> = (0..64)
            .map(|i| format!("/usr/bin/app{}", ((i * 7919) % n) / 20))
            .collect();
        let hits: Vec<Query<'_>> = (0..64)
            .map(|i| {
                let k = (i * 7919) % n;
                Query {
                    op: Op::Connect,
                    family: Family::INET,
                    proto: Proto::TCP,
                    exe: Some(hit_exes[i].as_str()),
                    uid: 1000,
                    addr: Some(
                        format!("10.{}.{}.7", (k / 256) % 256, k % 256)
                            .parse()
                            .unwrap(),
                    ),
                    port: Some(if k % 3 == 0 {
                        (1000 + k % 500 + 50) as u16
                    } else {
                        (1 + k % 60000) as u16
                    }),
                    path: None,
                }
            })
            .collect();
        assert!(
            hits.iter().all(|q| set.decide(q).rule.is_some()),
            "every hit query matches a rule"
        );
        g.bench_with_input(BenchmarkId::new("indexed-hits", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % hits.len();
                black_box(set.decide(black_box(&hits[i])))
            })
        });
        g.bench_with_input(BenchmarkId::new("indexed", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % queries.len();
                black_box(set.decide(black_box(&queries[i])))
            })
        });
        if n <= 1000 {
            g.bench_with_input(BenchmarkId::new("linear", n), &n, |b, _| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % queries.len();
                    black_box(set.decide_linear(black_box(&queries[i])))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
