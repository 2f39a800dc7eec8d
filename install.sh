#!/usr/bin/env bash
# caption-wizard set-up: ./install.sh
# Creates .venv, installs torch + torchvision, then caption-wizard (editable) with the dev extra.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")"

PY="${PYTHON:-python3}"
VENV=".venv"
# torch/torchvision pinned to the builds this project is tested with; override with TORCH_SPEC.
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV ($($PY --version))"
    "$PY" -m venv "$VENV"
else
    say "virtual environment $VENV already exists"
fi
VPY="$VENV/bin/python"

if "$VPY" - "$TORCH_SPEC" <<'PYEOF' 2>/dev/null
import sys, importlib.metadata as md
want = dict(s.split("==") for s in sys.argv[1].split())
sys.exit(0 if all(md.version(k) == v for k, v in want.items()) else 1)
PYEOF
then
    say "torch already installed: $TORCH_SPEC"
else
    say "installing $TORCH_SPEC (several GB on a CUDA machine; a minute or two)"
    "$VPY" -m pip install --disable-pip-version-check -q $TORCH_SPEC
fi

STAMP="$VENV/.caption-wizard-installed"
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && "$VPY" -c "import wizard" 2>/dev/null; then
    say "caption-wizard already installed (pyproject.toml unchanged)"
else
    say "installing caption-wizard (editable) with the dev extra"
    "$VPY" -m pip install --disable-pip-version-check -q -e ".[dev]"
    touch "$STAMP"
fi

say "checking the command"
"$VENV/bin/caption-wizard" --version
say "done. Activate with: source $VENV/bin/activate"
