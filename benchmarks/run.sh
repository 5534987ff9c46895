#!/usr/bin/env bash
# mlgate against the peers of ../shared/bench, in the same run: workload T (breast-cancer, one row per request)
# and E (minilm, one sentence per request), 64 connections, wrk; the HTTP floor and the offline limits too.
#
#   benchmarks/run.sh                     # T and E, every server, RUNS=2 DURATION=10 (about 45 minutes)
#   RUNS=1 DURATION=10 benchmarks/run.sh T floor fastapi flask mlgate   # one workload, a subset
#
# Environment (defaults): BENCH_SRC=<repo>/../shared/bench (read-only; copied to a temp dir and run there),
# BENCH_TMP=/tmp/bench (venvs, models, logs; reused between runs), RUNS=2, DURATION=10, MAX_MINUTES=90
# (the whole run is killed past it), WORKLOADS="T E"; everything else is ../shared/bench/run.sh's (its
# README.md). mlgate is installed editable from this checkout (MLGATE_SRC) and run as `mlgate serve` with no
# flags, i.e. with its defaults. Raw JSON lines and Markdown summaries land in benchmarks/results/.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH_SRC=${BENCH_SRC:-$REPO/../shared/bench}
[[ -x $BENCH_SRC/run.sh ]] || { echo "no benchmark harness at $BENCH_SRC (set BENCH_SRC)" >&2; exit 2; }
export MLGATE_SRC=$REPO RUNS=${RUNS:-2} DURATION=${DURATION:-10} BENCH_TMP=${BENCH_TMP:-/tmp/bench}
WORKLOADS=${WORKLOADS:-T E}
if [[ $# -gt 0 && ( $1 == T || $1 == E ) ]]; then WORKLOADS=$1; shift; fi
SERVERS=("$@")
[[ ${#SERVERS[@]} -gt 0 ]] || SERVERS=(floor fastapi flask django bentoml litserve mlserver mlgate)

WORK=$(mktemp -d /tmp/mlgate-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export MLGATE_DATA_DIR=$WORK/data   # a fresh database, not the user's (another checkout may have migrated it)
# One HTTP process per core, as measured in RESULTS.md (the server default is one process; the harness passes
# its environment on to `mlgate serve`).
export MLGATE_WORKERS=${MLGATE_WORKERS:-0}
cp -r "$BENCH_SRC" "$WORK/bench" && chmod -R u+w "$WORK/bench" && rm -f "$WORK/bench"/results/*
mkdir -p "$REPO/benchmarks/results"
# The harness measures the offline limits with the fastapi peer's venv: build it when fastapi is not in the run.
if [[ ${SKIP_OFFLINE:-0} != 1 && " ${SERVERS[*]} " != *" fastapi "* ]]; then
  for wl in $WORKLOADS; do SETUP_ONLY=1 "$WORK/bench/run.sh" "$wl" fastapi; done
fi
for wl in $WORKLOADS; do
  servers=()
  for s in "${SERVERS[@]}"; do [[ $wl == E && $s == floor ]] || servers+=("$s"); done
  timeout --kill-after=30 "$(( ${MAX_MINUTES:-90} * 60 ))" "$WORK/bench/run.sh" "$wl" "${servers[@]}" || echo "[bench] $wl ended with status $?" >&2
  cp "$WORK"/bench/results/* "$REPO/benchmarks/results/" 2>/dev/null || true
  rm -f "$WORK"/bench/results/*
done
if [[ ${SKIP_OFFLINE:-0} != 1 && " $WORKLOADS " == *" E "* ]]; then   # mlgate's own runtime, in-process
  out="$REPO/benchmarks/results/offline-mlgate-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
  for backend in torch onnxruntime; do   # minilm's example runs on onnxruntime; torch is the runtime's default
    BACKEND=$backend "$BENCH_TMP/venvs/mlgate/bin/python" "$REPO/benchmarks/offline_embed.py" \
      "$BENCH_TMP/models/minilm" 5 8 32 64 | tee -a "$out"
  done
fi
