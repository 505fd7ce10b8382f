#!/usr/bin/env bash
# Optional benchmark environment .venv-bench: deepinv imports torchvision, which needs a
# matching torch build, so it cannot live in .venv (CPU torch 2.13, no torchvision). Ours and
# deepinv are timed in this same environment (registry torch + torchvision + deepinv), installed
# at the exact versions of requirements/lock-bench.txt (refresh: bash scripts/lock.sh --bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv="$root/.venv-bench"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" --no-deps -r requirements/lock-bench.txt 2> >(grep -v "^WARNING: Location" >&2)
"${pip[@]}" --no-deps -e . 2> >(grep -v "^WARNING: Location" >&2)
"$venv/bin/python" -c "import deepinv, torch, fastmri_untrained; print('bench venv ready: torch', torch.__version__, 'deepinv', deepinv.__version__)"
