#!/usr/bin/env bash
# Every GPU figure of the docs in one command (under 8 minutes on one GPU), one JSON:
#   bash scripts/gpu_check.sh [OUT_JSON]                 # on a machine with CUDA
#   bash scripts/gpu_check.sh --device cpu --quick OUT   # a smoke run of the same steps (tests)
# Per network (package defaults), one fitting step of K networks in one batched pass at the
# fastMRI knee size (output 320x368: 640x368 k-space with the readout halved; 15 coils), for
# K = 1, 4, 16, 35, in float32 and with bf16 autocast for the network: ms per step and the slices
# per minute that gives with the default iterations (scripts/bench_batched.py).
set -euo pipefail
cd "$(dirname "$0")/.."
device=cuda size=(320 368) members=(1 4 16 35) repeats=5 out=outputs/gpu_check.json
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --quick) size=(32 32) members=(1 2) repeats=1; shift ;;
    *) out=$1; shift ;;
  esac
done
py=${PYTHON:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for precision in float32 bfloat16; do
  extra=()
  [ "$precision" = bfloat16 ] && extra=(--autocast bfloat16)
  "$py" scripts/bench_batched.py --device "$device" --size "${size[@]}" --members "${members[@]}" \
    --coils 15 --repeats "$repeats" --no-sequential "${extra[@]}" --json "$tmp/$precision.json"
done
mkdir -p "$(dirname "$out")"
"$py" - "$tmp" "$out" <<'PY'
import json, sys
from pathlib import Path
rows = [r for name in ("float32", "bfloat16") for r in json.loads((Path(sys.argv[1]) / f"{name}.json").read_text())]
Path(sys.argv[2]).write_text(json.dumps({"rows": rows}, indent=1) + "\n")
print(f"wrote {sys.argv[2]}: {len(rows)} rows")
PY
