"""Shared test helpers. Fixture modules of each area are registered in pytest_plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CLI = str(VENV_BIN / "caption-wizard")

pytest_plugins: list[str] = ["tests.conftest_hub", "tests.conftest_eval", "tests.families_support"]


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for running the real console script: quiet, offline, deterministic."""
    env = dict(os.environ)
    env.update({"PYTHONHASHSEED": "0", "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "120"})
    env.update(extra)
    return env


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 300, env: dict | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
    """Run `caption-wizard ARGS` as a real subprocess; stdout/stderr captured as text."""
    return subprocess.run([CLI, *args], cwd=cwd or ROOT, env=env or cli_env(), capture_output=True,
                          text=True, timeout=timeout, input=input)


@pytest.fixture
def cli():
    return run_cli
