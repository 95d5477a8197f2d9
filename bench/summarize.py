#!/usr/bin/env python3
"""Summarizes a bench/capture.sh run (JSON lines) as markdown tables."""
import json
import statistics
import sys
from collections import defaultdict


def main(path):
    runs = defaultdict(list)  # (mode, config) -> [ns_per_op] in order
    meta, drain = {}, None
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if "meta" in rec:
                meta = rec["meta"]
            elif "drain" in rec:
                drain = rec["drain"]
            else:
                runs[(rec["mode"], rec["config"])].append(rec["result"]["ns_per_op"])

    print(f"Run {meta.get('date')}, kernel {meta.get('kernel')}, {meta.get('cores')} cores, "
          f"{meta.get('rounds')} paired rounds; audit enabled before the run: "
          f"{meta.get('audit_enabled_before')}.\n")
    print("| loop | bare ns/op | netevd ns/op | netevd / bare | --no-coalesce ns/op | / bare | auditd ns/op | auditd / bare |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, label in [("tcp", "TCP connect+accept+close"), ("bind", "bind+listen+close"), ("udp", "UDP sendto")]:
        bare = runs.get((mode, "bare"), [])
        if not bare:
            continue
        cells = [label, f"{statistics.median(bare):.0f}"]
        for config in ["netevd", "netevd-no-coalesce"]:
            vals = runs.get((mode, config), [])
            if vals:
                # paired: each round's ratio to the bare run just before it
                ratios = [v / b for v, b in zip(vals, bare)]
                cells += [f"{statistics.median(vals):.0f}", f"{statistics.median(ratios):.2f}x"]
            else:
                cells += ["-", "-"]
        audit = runs.get((mode, "auditd"), [])
        if audit:
            cells += [f"{statistics.median(audit):.0f}", f"{statistics.median(audit) / statistics.median(bare):.1f}x"]
        else:
            cells += ["-", "-"]
        print("| " + " | ".join(cells) + " |")

    if any(config == "netevd-base" for _, config in runs):
        print("\nAgainst the previous build (BASE_NETEVD), same rounds: each ratio is paired "
              "with the bare run of its round.\n")
        print("| loop | bare ns/op | previous ns/op | / bare | this build ns/op | / bare | this / previous |")
        print("|---|---|---|---|---|---|---|")
        for mode, label, suffix in [("tcp", "TCP connect+accept+close", ""), ("bind", "bind+listen+close", ""),
                                    ("udp", "UDP sendto", ""), ("udp", "UDP sendto --no-coalesce", "-no-coalesce")]:
            bare = runs.get((mode, "bare"), [])
            base = runs.get((mode, "netevd-base" + suffix), [])
            new = runs.get((mode, "netevd" + suffix), [])
            if not (bare and base and new):
                continue
            rb = statistics.median([v / b for v, b in zip(base, bare)])
            rn = statistics.median([v / b for v, b in zip(new, bare)])
            rr = statistics.median([n / o for n, o in zip(new, base)])
            print(f"| {label} | {statistics.median(bare):.0f} | {statistics.median(base):.0f} | {rb:.2f}x "
                  f"| {statistics.median(new):.0f} | {rn:.2f}x | {rr:.3f} |")

    if drain:
        rate = drain["events"] / drain["wall_secs"] if drain["wall_secs"] else 0
        exact = drain["seen"] == drain["delivered"] + drain["dropped"]
        print("\n| drain (UDP connect() flood, --no-coalesce, print json to /dev/null) | value |\n|---|---|")
        print(f"| duration | {drain['wall_secs']:.1f} s |")
        print(f"| events drained | {drain['events']:,} ({rate:,.0f} events/s) |")
        print(f"| dropped | {drain['dropped']:,} |")
        print(f"| seen = delivered + dropped | {drain['seen']:,} = {drain['delivered']:,} + {drain['dropped']:,} ({'exact' if exact else 'MISMATCH'}) |")
        print(f"| daemon CPU | {drain['daemon_cpu_secs']:.1f} s ({100 * drain['daemon_cpu_secs'] / drain['wall_secs']:.0f}% of one core) |")
        print(f"| daemon peak RSS | {drain['daemon_rss_kb'] / 1024:.1f} MiB |")


if __name__ == "__main__":
    main(sys.argv[1])
