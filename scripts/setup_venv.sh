#!/usr/bin/env bash
# Idempotent set-up of .venv at the repository root with the project installed (editable).
# Safe to rerun: it only installs what is missing or changed. Every package comes at the exact
# version of requirements/lock.txt (refresh it with scripts/lock.sh); a changed lock, requirement
# or this script re-runs the set-up (the stamp hashes them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PY=${PYTHON:-python3}
venv="$root/.venv"
stamp="$venv/.setup-stamp"
want=$(cat pyproject.toml requirements/*.txt scripts/setup_venv.sh | sha256sum | cut -d" " -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/fastmri-untrained" ]; then
  exit 0
fi
echo "[setup] creating/updating $venv" >&2
[ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
# The machine's pip config lists local index folders that lack most packages; pip warns once per
# package about each, which buries real errors, so those lines are dropped.
pipi() {
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location" >&2)
}
# Exactly the locked versions, without resolving: the lock lists every dependency (torch is the
# CPU wheel on disk; fastmri without its torchvision requirement, see requirements/runtime.txt).
pipi --no-deps -r requirements/lock.txt
pipi --no-deps -e .
# A CUDA torchvision beside CPU torch breaks `import pytorch_lightning`; never leave one here.
if "$venv/bin/python" -m pip show -q torchvision >/dev/null 2>&1; then
  "$venv/bin/python" -m pip uninstall -y -q torchvision
fi
"$venv/bin/python" -c "import torch, fastmri, sigpy, pytorch_lightning, fastmri_untrained" \
  || { echo "[setup] import check failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup] ready: $venv/bin/fastmri-untrained" >&2
