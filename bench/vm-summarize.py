#!/usr/bin/env python3
"""Summarizes bench/vm-capture.sh runs (JSON lines, one file per kernel) as markdown.

Each ratio is paired: a backend's ns/op in a round divided by the bare ns/op of
the same loop in the same round, inside the same VM; the table gives the
median of the rounds and, in brackets, their min-max. Files of the same kernel
(several boots) are merged: their rounds are pooled, n counts them all.
"""
import json
import statistics
import sys
from collections import defaultdict

MODES = ["tcp", "bind", "udp"]


def load(path):
    meta, guest, host = {}, {}, {}
    starts = defaultdict(list)  # backend -> [start records]
    runs = defaultdict(dict)  # (config, mode) -> {round: ns_per_op}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            if "meta" in rec:
                meta = rec["meta"]
            elif "guest" in rec:
                guest = rec["guest"]
            elif "host" in rec:
                host = rec["host"]
            elif "start" in rec:
                starts[rec["start"]["backend"]].append(rec["start"])
            else:
                runs[(rec["config"], rec["mode"])][rec["round"]] = rec["result"]["ns_per_op"]
    return meta, guest, host, starts, runs


def main(paths):
    kernels = {}  # kernel -> {"starts": backend -> [..], "runs": (config, mode) -> {(file, round): ns}, "boots": [...]}
    for path in paths:
        meta, guest, host, starts, runs = load(path)
        kernel = guest.get("kernel") or meta.get("vm_kernel", "?")
        k = kernels.setdefault(kernel, {"starts": defaultdict(list), "runs": defaultdict(dict), "boots": []})
        for b, st in starts.items():
            k["starts"][b] += st
        for key, byround in runs.items():
            for r, v in byround.items():
                k["runs"][key][(path, r)] = v
        k["boots"].append((path, guest, host, runs))

    print("| kernel | backend | loads | tcp / bare | bind / bare | udp / bare | netevd start (s) |")
    print("|---|---|---|---|---|---|---|")
    for kernel, k in kernels.items():
        starts, runs = k["starts"], k["runs"]
        for backend in ["cgroup", "lsm"]:
            st = starts.get(backend, [])
            if not st:
                print(f"| {kernel} | {backend} | not run | - | - | - | - |")
                continue
            if not any(s["loads"] for s in st):
                err = st[0].get("error", "").splitlines()[-1] if st[0].get("error") else ""
                print(f"| {kernel} | {backend} | no: {err[:160]} | - | - | - | - |")
                continue
            cells = []
            for m in MODES:
                bare, got = runs.get(("bare", m), {}), runs.get((backend, m), {})
                ratios = [got[r] / bare[r] for r in sorted(got) if r in bare]
                if ratios:
                    cells.append(f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}, n={len(ratios)})")
                else:
                    cells.append("-")
            secs = [s["secs"] for s in st if s["loads"]]
            print(f"| {kernel} | {backend} | yes | " + " | ".join(cells) + f" | {statistics.median(secs):.1f} |")

    print("\nPer boot (median of its rounds):\n")
    print("| kernel | boot (raw file) | bare tcp / bind / udp ns/op | cgroup tcp / bind / udp | lsm tcp / bind / udp | iterations (tcp/bind/udp) | VM wall time |")
    print("|---|---|---|---|---|---|---|")
    for kernel, k in kernels.items():
        for path, guest, host, runs in k["boots"]:
            bare = [statistics.median(runs[("bare", m)].values()) if runs.get(("bare", m)) else None for m in MODES]
            cols = []
            for backend in ["cgroup", "lsm"]:
                rs = []
                for m in MODES:
                    b, g = runs.get(("bare", m), {}), runs.get((backend, m), {})
                    rr = [g[r] / b[r] for r in g if r in b]
                    rs.append(f"{statistics.median(rr):.2f}" if rr else "-")
                cols.append(" / ".join(rs))
            it = guest.get("iterations", {})
            name = path.rsplit("/", 1)[-1]
            print(f"| {kernel} | {name} | " + " / ".join(f"{x:.0f}" if x else "-" for x in bare)
                  + f" | {cols[0]} | {cols[1]} | {it.get('tcp')}/{it.get('bind')}/{it.get('udp')}"
                  + f" | {host.get('wall_secs', '?')} s (vng rc {host.get('vng_rc', '?')}) |")


if __name__ == "__main__":
    main(sys.argv[1:])
