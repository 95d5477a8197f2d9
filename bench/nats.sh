#!/usr/bin/env bash
# The NATS export's figures (bench/RESULTS.md): one Exporter into a private
# JetStream server, its spool while the server is away, one netev-sql --from
# consumer into a private PostgreSQL. Needs nats-server and postgresql
# (scripts/setup.sh). Usage: bench/nats.sh [--events N]
set -euo pipefail
cd "$(dirname "$0")/.."
nice -n 10 cargo build --release -q -p netev-natsbench -p netev-sql
exec target/release/netev-natsbench "$@"
