"""CAPTION_WIZARD_CACHE moves every cache the tool writes (wizard/paths.py): real commands as
subprocesses, with HOME, XDG_CACHE_HOME and MODELSCOPE_CACHE pointed at folders of their own, so a
cache written to a default place instead shows up there.

    fetched image URLs (images/), data indexes and tokenized captions (data/), CLIP scores (filter/),
    unpacked WebDataset shards (webdataset/), vision features (vision/), jieba's cache (metrics/),
    model and dataset downloads (modelscope/)
"""

from __future__ import annotations

import http.server
import json
import tarfile
import threading
from functools import partial
from pathlib import Path

import pytest

from tests.conftest import cli_env, run_cli
from tests.hubserver import WANTED, make_tiny_model, serve_folder_as_model
from tests.test_filter import tiny_clip

MODEL_ID = "tiny-org/tiny-vl"


@pytest.fixture
def roots(tmp_path, hub_env):
    """(the environment for the commands, CAPTION_WIZARD_CACHE, the default roots that must stay empty)."""
    cache = tmp_path / "cw-cache"
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    home.mkdir()
    env = cli_env(**{**hub_env.env, "CAPTION_WIZARD_CACHE": str(cache), "HOME": str(home),
                     "XDG_CACHE_HOME": str(xdg), "MODELSCOPE_CACHE": str(hub_env.cache)})
    defaults = [xdg / "caption-wizard", home / ".cache" / "caption-wizard", home / ".cache" / "modelscope",
                hub_env.cache]
    return env, cache, defaults


def assert_nothing_outside(cache: Path, defaults: list[Path], home: Path) -> None:
    for folder in defaults:
        assert not folder.exists(), f"a cache was written to {folder}, not under CAPTION_WIZARD_CACHE"
    strays = [p for p in home.rglob("*") if "caption-wizard" in p.name or "modelscope" in p.name]
    assert strays == [], strays
    assert cache.is_dir()


@pytest.fixture
def image_urls(tmp_path):
    """4 PNG shapes served by http.server on 127.0.0.1; yields their URLs and captions."""
    from wizard.demo.shapes import make_shapes

    www = tmp_path / "www"
    www.mkdir()
    items = []
    for i, s in enumerate(make_shapes(4, seed=41)):
        s.image.resize((64, 64)).save(www / f"{i}.png")
        items.append((f"{i}.png", f"a {s.color} {s.shape} on {s.background} background"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield [(f"{base}/{name}", text) for name, text in items]
    server.shutdown()
    server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def shard(path: Path) -> Path:
    """One WebDataset shard of 2 samples (KEY.png + KEY.txt)."""
    import io

    from wizard.demo.shapes import make_shapes

    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w") as tar:
        for i, s in enumerate(make_shapes(2, seed=5)):
            buf = io.BytesIO()
            s.image.save(buf, format="PNG")
            for ext, data in (("png", buf.getvalue()), ("txt", f"a {s.color} {s.shape}".encode())):
                info = tarfile.TarInfo(f"sample{i}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_data_filter_and_downloads_all_land_under_caption_wizard_cache(tmp_path, roots, image_urls, hub_server):
    env, cache, defaults = roots
    serve_folder_as_model(hub_server, MODEL_ID, make_tiny_model(tmp_path / "tiny-vl"))
    serve_folder_as_model(hub_server, "tiny/clip", tiny_clip(tmp_path / "clip"))
    data = tmp_path / "urls" / "train.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": "<image>Describe."},
                                                     {"role": "assistant", "content": text}],
                                        "images": [url]}) + "\n" for url, text in image_urls))

    # image URLs fetched, CLIP model downloaded, scores and the data index written
    checked = run_cli("data", str(data), "data.filter.clip_min=-1", "data.filter.clip_model=tiny/clip",
                      "data.eval_fraction=0", env=env, cwd=tmp_path, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert len(list((cache / "images").rglob("*"))) >= 4 and "4 image URLs: 4 downloaded" in checked.stdout
    assert len(list((cache / "filter").glob("*.json"))) == 1
    assert list((cache / "data").glob("*.json"))
    assert (cache / "modelscope" / "models" / "tiny--clip").is_dir()

    downloaded = run_cli("download", MODEL_ID, env=env, cwd=tmp_path, timeout=120)
    assert downloaded.returncode == 0, downloaded.stderr
    snapshot = cache / "modelscope" / "models" / "tiny-org--tiny-vl" / "snapshots" / "master"
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(WANTED) and str(snapshot) in downloaded.stdout

    shards = run_cli("data", str(shard(tmp_path / "wds" / "train-000000.tar")), "data.eval_fraction=0",
                     env=env, cwd=tmp_path, timeout=120)
    assert shards.returncode == 0, shards.stdout + shards.stderr
    assert list((cache / "webdataset").rglob("sample0.png"))
    assert_nothing_outside(cache, defaults, Path(env["HOME"]))


@pytest.mark.slow
def test_training_and_eval_caches_land_under_caption_wizard_cache(tmp_path, roots):
    env, cache, defaults = roots
    runs = tmp_path / "runs"
    trained = run_cli("run", "recipes/demo-shapes.yaml", "tuning.cache_vision=disk", "train.max_steps=2",
                      "data.max_samples=16", "--plain", "--runs-dir", str(runs), env=env, timeout=600)
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert list((cache / "vision").rglob("*.safetensors"))  # tuning.cache_vision=disk
    assert list((cache / "data" / "tokens").glob("*.npz"))   # tokenized captions
    run_dir = next(runs.iterdir())
    scored = run_cli("eval", str(run_dir), env=env, timeout=600)  # Chinese captions: jieba's cache
    assert scored.returncode == 0, scored.stdout[-2000:] + scored.stderr[-2000:]
    assert (cache / "metrics" / "jieba.cache").is_file()
    assert_nothing_outside(cache, defaults, Path(env["HOME"]))
