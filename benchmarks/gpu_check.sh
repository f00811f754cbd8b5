#!/usr/bin/env bash
# Run every CUDA check of offline-zoo (benchmarks/gpu_check.py) on a lent GPU machine, from the
# repository root of a copy of the working tree; results land in $OUT (default ./gpu_check_out).
#   OUT=/path/to/out benchmarks/gpu_check.sh [--time-limit 570] [--steps env,pytest,perf,train]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-$(command -v python || command -v python3)}"
exec "$PY" benchmarks/gpu_check.py --out "$OUT" "$@"
