"""ModelScope downloads (wizard/hub/) against a local hub (tests/hubserver.py), with the real client.

The command-line tests run `caption-wizard` as a subprocess: the modelscope client reads its
configuration once per process.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import run_cli
from tests.hubserver import UNWANTED, WANTED, dead_endpoint, make_tiny_model, serve_folder_as_model
from wizard import hub
from wizard.data.modelscope_sets import open_image, read_coco_2014_caption, read_m3it
from wizard.errors import UserError
from wizard.units import fmt_bytes
from wizard.ui.download_progress import RichDownloadProgress

MODEL_ID = "tiny-org/tiny-vl"


def model(model_id=MODEL_ID, source="modelscope", revision="master"):
    return {"id": model_id, "source": source, "revision": revision}


@pytest.fixture
def tiny_repo(tmp_path, hub_server, hub_env):
    folder = make_tiny_model(tmp_path / "tiny-vl")
    return serve_folder_as_model(hub_server, MODEL_ID, folder)


def snapshot(hub_env, revision="master") -> Path:
    return hub_env.cache / "models" / MODEL_ID.replace("/", "--") / "snapshots" / revision


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- download, cache, lock ---------------------------------------------------------------------
def test_download_command_fetches_only_what_a_run_needs(tiny_repo, hub_server, hub_env):
    result = run_cli("download", MODEL_ID, env=hub_env.env, timeout=60)
    assert result.returncode == 0, result.stderr
    folder = snapshot(hub_env)
    assert sorted(p.name for p in folder.iterdir()) == sorted(WANTED)
    for name in WANTED:
        assert (folder / name).read_bytes() == tiny_repo.files[name]
    requested = {r["query"]["FilePath"] for r in hub_server.file_requests()}
    assert requested == set(WANTED) and not requested & set(UNWANTED)
    # where the files went, how big, which revision; plain progress lines, no tqdm bars
    assert str(folder) in result.stdout and "1.4 MiB" in result.stdout
    assert tiny_repo.commit in result.stdout
    assert f"downloading {MODEL_ID}: {len(WANTED)} files" in result.stderr
    assert "it/s" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 6


def test_progress_bar_and_second_call_without_network(tiny_repo, hub_server, hub_env):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    first = hub.resolve_model(model(), progress=RichDownloadProgress(console))
    assert first.path == snapshot(hub_env)
    assert f"{MODEL_ID}  {len(WANTED)}/{len(WANTED)} files" in out.getvalue()   # bar of bytes, all files
    assert first.revision == tiny_repo.commit
    assert first.files == {name: sha(tiny_repo.files[name]) for name in WANTED}   # lock.json facts

    hub_server.reset_log()
    second = hub.resolve_model(model())
    assert hub_server.requests() == []   # not even a listing: the cache answers
    assert (second.path, second.revision, second.files) == (first.path, first.revision, first.files)


def test_the_library_prints_nothing_without_a_progress(tiny_repo, hub_server, hub_env, capfd):
    hub.resolve_model(model())   # a download inside a training process, say: no bar, no line
    assert hub.resolve_model(model()).path == snapshot(hub_env)
    assert capfd.readouterr() == ("", "")


def test_replay_with_locked_revision_uses_the_cache(tiny_repo, hub_server, hub_env):
    first = hub.resolve_model(model())
    hub_server.reset_log()
    again = hub.resolve_model(model(), revision=first.revision)
    assert hub_server.requests() == [] and again.path == first.path and again.revision == first.revision
    with pytest.raises(UserError, match=f"{MODEL_ID} at revision v9 not found on {hub_env.endpoint}"):
        hub.resolve_model(model(revision="v9"))


def test_resume_a_partial_file_with_range(tiny_repo, hub_server, hub_env):
    weights = tiny_repo.files["model.safetensors"]
    folder = snapshot(hub_env)
    folder.mkdir(parents=True)
    (folder / "model.safetensors.incomplete").write_bytes(weights[:600_000])
    hub.resolve_model(model())
    asked = [r for r in hub_server.file_requests() if r["query"]["FilePath"] == "model.safetensors"]
    assert [(r["range"], r["status"]) for r in asked] == [("bytes=600000-", 206)]
    assert (folder / "model.safetensors").read_bytes() == weights
    assert not (folder / "model.safetensors.incomplete").exists()


def test_download_reports_the_bytes_it_fetched_after_a_resume(tiny_repo, hub_server, hub_env):
    weights = tiny_repo.files["model.safetensors"]
    folder = snapshot(hub_env)
    folder.mkdir(parents=True)
    (folder / "model.safetensors.incomplete").write_bytes(weights[:600_000])
    result = run_cli("download", MODEL_ID, env=hub_env.env, timeout=60)
    assert result.returncode == 0, result.stderr
    total = sum(len(tiny_repo.files[name]) for name in WANTED)
    fetched, kept = fmt_bytes(total - 600_000), fmt_bytes(600_000)
    said = " ".join(result.stdout.split())
    assert f"downloaded {fetched} in" in said and f"resumed: {kept} were already here" in said  # not 1.5 MB
    assert (folder / "model.safetensors").read_bytes() == weights


def test_interrupted_transfer_resumes_where_it_stopped(tiny_repo, hub_server, hub_env):
    tiny_repo.cut_after["model.safetensors"] = 700_000   # the connection drops mid-file
    resolved = hub.resolve_model(model())
    asked = [r for r in hub_server.file_requests() if r["query"]["FilePath"] == "model.safetensors"]
    assert len(asked) == 2 and asked[0]["range"] is None
    assert asked[1]["status"] == 206 and int(asked[1]["range"][len("bytes="):-1]) > 0
    assert (resolved.path / "model.safetensors").read_bytes() == tiny_repo.files["model.safetensors"]


def test_a_corrupted_download_is_a_clear_error(tiny_repo, hub_server, hub_env):
    size = len(tiny_repo.files["model.safetensors"])
    tiny_repo.corrupt["model.safetensors"] = b"\0" * size   # right size, wrong sha256
    with pytest.raises(UserError, match="model.safetensors .*failed its size/sha256 check") as e:
        hub.resolve_model(model())
    assert hub_env.endpoint in e.value.message and "MODELSCOPE_ENDPOINT" in e.value.hint
    assert not (snapshot(hub_env) / "model.safetensors").exists()   # nothing broken left in place
    del tiny_repo.corrupt["model.safetensors"]   # the hub is fixed: only that file is fetched
    hub_server.reset_log()
    hub.resolve_model(model())
    assert [r["query"]["FilePath"] for r in hub_server.file_requests()] == ["model.safetensors"]


def test_a_corrupted_cached_file_is_downloaded_again(tiny_repo, hub_server, hub_env):
    first = hub.resolve_model(model())
    cached = first.path / "model.safetensors"
    data = bytearray(cached.read_bytes())
    data[1000] ^= 0xFF
    cached.write_bytes(bytes(data))
    hub_server.reset_log()
    again = hub.resolve_model(model())
    assert [r["query"]["FilePath"] for r in hub_server.file_requests()] == ["model.safetensors"]
    assert (again.path / "model.safetensors").read_bytes() == tiny_repo.files["model.safetensors"]


def test_not_enough_disk_space(tiny_repo, hub_server, hub_env, monkeypatch):
    monkeypatch.setattr(hub.client, "disk_free", lambda path: 1000)
    with pytest.raises(UserError, match=r"needs 1\.4 MiB, only 1000 B free in .*ms-cache") as e:
        hub.resolve_model(model())
    assert "MODELSCOPE_CACHE" in e.value.hint
    assert hub_server.file_requests() == []


def test_unknown_model_suggests_catalog_ids(hub_server, hub_env):
    with pytest.raises(UserError) as e:
        hub.resolve_model(model("Qwen/Qwen2-VL-2B-Instrukt"))
    assert e.value.message == f"model Qwen/Qwen2-VL-2B-Instrukt not found on {hub_env.endpoint}"
    assert "Qwen/Qwen2-VL-2B-Instruct" in e.value.hint


# -- offline -----------------------------------------------------------------------------------
def test_offline_with_nothing_cached_fails_fast_and_clearly(hub_env):
    endpoint = dead_endpoint()
    started = time.monotonic()
    result = run_cli("download", MODEL_ID, env=hub_env.with_endpoint(endpoint), timeout=60)
    assert time.monotonic() - started < 15
    assert result.returncode == 2
    err = " ".join(result.stderr.split())
    assert endpoint in err and "offline" in err
    assert "model.source=local" in err and "MODELSCOPE_ENDPOINT" in err
    assert "Traceback" not in result.stderr


def test_offline_with_a_warm_cache_works(tiny_repo, hub_server, hub_env):
    assert run_cli("download", MODEL_ID, env=hub_env.env, timeout=60).returncode == 0
    hub_server.stop()   # the hub is gone; everything needed is cached
    result = run_cli("download", MODEL_ID, env=hub_env.env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "already in the cache" in result.stdout and tiny_repo.commit in result.stdout
    # a snapshot left by another tool (no manifest of ours): used offline, with a warning
    for manifest in (hub_env.cache / "models").rglob(".caption-wizard/*.json"):
        manifest.unlink()
    out = io.StringIO()
    resolved = hub.resolve_model(model(), progress=RichDownloadProgress(Console(file=out, width=200)))
    assert resolved.path == snapshot(hub_env) and "offline" in out.getvalue()


# -- local folders -----------------------------------------------------------------------------
def test_local_folders_never_touch_the_network(tmp_path, hub_server, hub_env):
    folder = make_tiny_model(tmp_path / "mine")
    for source in ("local", "modelscope"):   # a bare id that is an existing folder counts as local
        resolved = hub.resolve_model(model(str(folder), source))
        assert resolved.source == "local" and resolved.path == folder
        assert "model.safetensors" in resolved.files and "pytorch_model.bin" not in resolved.files
    assert hub_server.requests() == []
    with pytest.raises(UserError, match="model folder .*nowhere does not exist"):
        hub.resolve_model(model(str(tmp_path / "nowhere"), "local"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no config.json"):
        hub.resolve_model(model(str(tmp_path / "empty"), "local"))


# -- datasets ----------------------------------------------------------------------------------
def png(color) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def jsonl(rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows).encode()


@pytest.fixture
def m3it(hub_server, hub_env):
    """An M3IT-shaped dataset repo: raw coco-cn lines, loading-script-shaped flickr8k-cn lines."""
    red, green = png("red"), png("green")
    coco = "data/captioning/coco-cn"
    files = {
        f"{coco}/instructions.json": json.dumps(["用中文描述这张图片。"]).encode(),
        f"{coco}/train.jsonl": jsonl([
            {"image_id": "1", "image_base64": b64(red), "caption": "一个红色的方块"},
            "{not json",
            {"image_id": "2", "image_base64": b64(green), "caption": "绿色的图片"},
            {"image_id": "1", "image_base64": b64(red), "caption": "红色背景"},
        ]),
        f"{coco}/val.jsonl": jsonl([{"image_id": "3", "image_base64": b64(red), "caption": "红"}]),
        f"{coco}/test.jsonl": jsonl([{"image_id": "4", "image_base64": b64(green), "caption": "绿"}]),
        "data/captioning/flickr8k-cn/train.jsonl": jsonl([
            {"instruction": "描述图片", "inputs": "", "image_base64_str": [b64(green)], "outputs": "草地"},
        ]),
        "data/vqa/fm-iqa/train.jsonl": b"x" * 50_000,
        "README.md": b"# M3IT\n",
    }
    return hub_server.add_repo("dataset", "AI-ModelScope/M3IT", files)


def test_m3it_subset_download_and_parse(m3it, hub_server, hub_env):
    result = run_cli("download", "AI-ModelScope/M3IT", "--dataset", "--subset", "coco-cn",
                     env=hub_env.env, timeout=60)
    assert result.returncode == 0, result.stderr
    fetched = sorted(r["query"]["FilePath"] for r in hub_server.file_requests())
    assert fetched == sorted(p for p in m3it.files if p.startswith("data/captioning/coco-cn/"))

    folder = hub.resolve_dataset("AI-ModelScope/M3IT", subset="coco-cn")
    assert str(folder) in result.stdout
    train = read_m3it(folder, "coco-cn", "train")
    assert [r.captions for r in train] == [["一个红色的方块", "红色背景"], ["绿色的图片"]]
    assert open_image(train[0].image).getpixel((0, 0)) == (255, 0, 0)
    assert train.skipped == 1 and "line 2" in train.problems[0]
    assert [r.captions for r in read_m3it(folder, "coco-cn", "validation")] == [["红"]]
    assert len(read_m3it(folder, "coco-cn", "train", max_samples=1)) == 1

    flickr = read_m3it(hub.resolve_dataset("AI-ModelScope/M3IT", subset="flickr8k-cn"),
                       "flickr8k-cn", "train")
    assert [r.captions for r in flickr] == [["草地"]]
    with pytest.raises(UserError, match="384 GB: choose one subset"):
        hub.resolve_dataset("AI-ModelScope/M3IT")
    with pytest.raises(UserError, match="no files we can use under data/captioning/nope/"):
        hub.resolve_dataset("AI-ModelScope/M3IT", subset="nope")


def test_m3it_file_with_unknown_keys_names_them(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps({"picture": "x", "label": "y"}) + "\n")
    with pytest.raises(UserError, match=r"keys \['label', 'picture'\]; expected an image"):
        read_m3it(tmp_path, "coco-cn", "train")


def test_coco_2014_caption_zips_and_image_urls(hub_server, hub_env):
    def csv_zip(name, rows):
        text = "uniq_id,image_id,caption,image\n" + "".join(",".join(r) + "\n" for r in rows)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(name, text)
        return buf.getvalue()

    hub_server.static["img/1.png"] = png("red")
    hub_server.static["img/2.png"] = png("blue")
    url = hub_server.url
    hub_server.static["train2014.csv.zip"] = csv_zip("train2014.csv", [
        ("a", "1", "a red square", url("img/1.png")),
        ("b", "1", "red", url("img/1.png")),
        ("c", "2", "a blue square", url("img/2.png")),
        ("d", "3", "gone", url("img/dead.png")),
    ])
    hub_server.static["val2014.csv.zip"] = csv_zip("val2014.csv", [
        ("e", "2", "blue&&a blue picture", url("img/2.png")),
    ])
    script = f'_URLS = {{"train": "{url("train2014.csv.zip")}", "valid": "{url("val2014.csv.zip")}"}}\n'
    hub_server.add_repo("dataset", "modelscope/coco_2014_caption",
                        {"coco_2014_caption.py": script.encode(), "dataset_infos.json": b"{}"})

    folder = hub.resolve_dataset("modelscope/coco_2014_caption")
    assert (folder / "downloads" / "train2014.csv.zip").is_file()
    train = read_coco_2014_caption(folder, "train", timeout=5)
    assert [r.captions for r in train] == [["a red square", "red"], ["a blue square"]]
    assert train.skipped == 1 and "dead.png" in train.problems[0]
    assert [r.captions for r in read_coco_2014_caption(folder, "validation")] == [["blue", "a blue picture"]]

    hub_server.static.pop("img/1.png"), hub_server.static.pop("img/2.png")
    with pytest.raises(UserError, match="could be fetched") as e:
        read_coco_2014_caption(folder, "train", timeout=5)
    assert "M3IT" in e.value.hint


# -- a run whose model comes from the hub ------------------------------------------------------
@pytest.mark.slow
def test_run_trains_a_model_served_by_the_hub(tmp_path, hub_server, hub_env):
    pytest.importorskip("wizard.runner", reason="caption-wizard run is not there yet")
    from wizard.demo.model import demo_base_path

    base = Path(demo_base_path())
    if not (base / "config.json").is_file():
        pytest.skip("the demo base model is not built yet (wizard/assets/demo-base)")
    repo = serve_folder_as_model(hub_server, "caption-wizard/tiny-qwen2-vl-shapes", base)
    args = ["recipes/demo-shapes.yaml", "model.source=modelscope", f"model.id={repo.repo_id}",
            "train.max_steps=2", "data.max_samples=32", "--plain", "--runs-dir", str(tmp_path / "runs")]
    first = run_cli("run", *args, env=hub_env.env, timeout=600)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert any(r["query"].get("FilePath") == "config.json" for r in hub_server.file_requests())
    lock = next((tmp_path / "runs").glob("*/lock.json")).read_text()
    assert repo.commit in lock                                         # the resolved revision
    weights = next(p for p in repo.files if p.endswith(".safetensors"))
    assert sha(repo.files[weights]) in lock                            # and the files' sha256

    hub_server.stop()   # everything is cached: the same recipe runs with the hub down
    again = run_cli("run", *args, env=hub_env.env, timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]


def test_a_repo_without_safetensors_gets_its_bin_weights(tmp_path, hub_server, hub_env):
    folder = make_tiny_model(tmp_path / "old")
    (folder / "model.safetensors").unlink()
    serve_folder_as_model(hub_server, "old-org/old-vl", folder)
    resolved = hub.resolve_model(model("old-org/old-vl"))
    assert (resolved.path / "pytorch_model.bin").is_file() and "pytorch_model.bin" in resolved.files
    assert not (resolved.path / "model-q4_k_m.gguf").exists()
