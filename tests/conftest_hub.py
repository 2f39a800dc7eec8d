"""pytest fixtures for the local ModelScope hub (tests/hubserver.py).

    def test_x(hub_server, hub_env):          # hub_env: this test's MODELSCOPE_* settings
        serve_folder_as_model(hub_server, "owner/name", folder)
        subprocess.run([CLI, "download", "owner/name"], env=hub_env.env)

Registered in tests/conftest.py through `pytest_plugins`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hubserver import HubServer


@pytest.fixture
def hub_server():
    """A hub on 127.0.0.1 (port chosen by the OS), stopped after the test."""
    server = HubServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class HubEnv:
    cache: Path          # MODELSCOPE_CACHE
    home: Path           # MODELSCOPE_HOME (session id, no saved login)
    endpoint: str        # MODELSCOPE_ENDPOINT
    env: dict            # os.environ for subprocesses, with the above

    def with_endpoint(self, endpoint: str) -> dict:
        return {**self.env, "MODELSCOPE_ENDPOINT": endpoint}


@pytest.fixture
def hub_env(tmp_path, monkeypatch, hub_server) -> HubEnv:
    """Point this process (and subprocesses started with `.env`) at the test hub and a fresh cache."""
    values = {
        "MODELSCOPE_CACHE": str(tmp_path / "ms-cache"),
        "MODELSCOPE_HOME": str(tmp_path / "ms-home"),
        "MODELSCOPE_ENDPOINT": hub_server.endpoint,
        "MODELSCOPE_DOWNLOAD_INTRA_CLOUD": "false",   # no cloud-region probe
        "MODELSCOPE_API_TOKEN": "",                   # never a saved login
        "TQDM_DISABLE": "1",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MODELSCOPE_DOMAIN", raising=False)
    monkeypatch.delenv("CAPTION_WIZARD_CACHE", raising=False)  # it would move the downloads away from `cache`
    return HubEnv(cache=Path(values["MODELSCOPE_CACHE"]), home=Path(values["MODELSCOPE_HOME"]),
                  endpoint=hub_server.endpoint, env=dict(os.environ))
