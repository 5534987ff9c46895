#!/usr/bin/env bash
# Cost growth (issue 17): mlgate's requests/s on workload T (breast-cancer, one row per request) at 64, 256 and
# 512 connections, with 1 and 2 HTTP processes, through the shared harness (wrk, 3 s warm-up, DURATION s
# measured, RUNS repetitions; see benchmarks/run.sh), then one table: requests/s (median of the repetitions),
# p99, server CPU, and the change from the 64-connection figure.
#
#   benchmarks/cost_growth.sh                    # RUNS=2 DURATION=10: about 6 minutes
#   CONNS_LIST="64 512" PROCS_LIST=2 benchmarks/cost_growth.sh
#
# One client address opens every connection, past mlgate's per-address limit (max_connections_per_client, 64
# per process by default, a defence against one greedy remote client), so this run turns that limit off
# (MLGATE_MAX_CONNECTIONS_PER_CLIENT=0); everything else is mlgate's defaults, as in benchmarks/run.sh.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
export RUNS=${RUNS:-2} DURATION=${DURATION:-10} SKIP_OFFLINE=1 MLGATE_MAX_CONNECTIONS_PER_CLIENT=0
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
for c in ${CONNS_LIST:-64 256 512}; do
  for w in ${PROCS_LIST:-1 2}; do
    echo "[cost] $c connections, $w HTTP process(es)" >&2
    CONNS=$c MLGATE_WORKERS=$w TAG=cost-$STAMP-c$c-w$w "$REPO/benchmarks/run.sh" T mlgate >/dev/null
  done
done
python3 - "$REPO/benchmarks/results" "$STAMP" <<'PY'
import glob, json, re, statistics as st, sys
rows = {}
for path in glob.glob(f"{sys.argv[1]}/T-*-cost-{sys.argv[2]}-c*-w*.jsonl"):
    c, w = map(int, re.search(r"-c(\d+)-w(\d+)\.jsonl$", path).groups())
    runs = [json.loads(line) for line in open(path) if line.strip()]
    runs = [r for r in runs if r.get("kind") == "http" and r.get("rps")]
    if runs:
        rows[(w, c)] = (st.median(r["rps"] for r in runs), st.median(r["p99_us"] / 1000 for r in runs),
                        st.median(r.get("server_cpu_pct", 0) for r in runs),
                        sum(r.get("err_connect", 0) + r.get("err_read", 0) + r.get("err_status", 0) for r in runs),
                        [round(r["rps"]) for r in runs])
print("| HTTP processes | connections | req/s (median) | runs | vs 64 connections | p99 ms | server CPU % | errors |")
print("|---:|---:|---:|---|---:|---:|---:|---:|")
for (w, c), (rps, p99, cpu, errors, each) in sorted(rows.items()):
    base = rows.get((w, 64), (rps,))[0]
    print(f"| {w} | {c} | {rps:.0f} | {' / '.join(map(str, each))} | {rps / base - 1:+.0%} | {p99:.1f} | {cpu:.0f} | {errors} |")
if (1, 64) in rows and (2, 64) in rows:
    print(f"\n2 processes / 1 process at 64 connections: {rows[(2, 64)][0] / rows[(1, 64)][0]:.2f}x")
PY
