#!/usr/bin/env bash
# Optional benchmark environment .venv-bench: deepinv imports torchvision, which needs a
# matching torch build, so it cannot live in .venv (CPU torch 2.13, no torchvision). Ours and
# deepinv are timed in this same environment (registry torch + torchvision + deepinv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv-bench"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" "torch==2.14.*" "torchvision==0.29.*" "deepinv==0.5.*" 2> >(grep -v "^WARNING: Location" >&2)
grep -v -E '^(#|pytorch-lightning|torchmetrics|bm3d|pytest)' requirements/runtime.txt | grep . \
  | "$venv/bin/python" -m pip install -q --disable-pip-version-check -r /dev/stdin 2> >(grep -v "^WARNING: Location" >&2)
"${pip[@]}" --no-deps fastmri==0.3.0 pytorch-lightning torchmetrics lightning-utilities
"${pip[@]}" --no-deps -e .
"$venv/bin/python" -c "import deepinv, torch, fastmri_untrained; print('bench venv ready: torch', torch.__version__, 'deepinv', deepinv.__version__)"
