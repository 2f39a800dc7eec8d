"""Hostile input (issue 12, items 6-10): finite bounds, escaped markup, strict YAML, torn event
lines and the small ones. Each case: exit 2 with a message naming the value and a fix, never a
traceback, never a run folder. Fast: in-process or a quick `--dry-run`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env, run_cli
from wizard.errors import UserError
from wizard.recipe import apply_overrides, load_recipe

DEMO = ROOT / "recipes" / "demo-shapes.yaml"


def _no_traceback(proc):
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr


# ----------------------------------------------------------------------------- 6. range holes
@pytest.mark.parametrize("override, says", [
    ("train.epochs=1e400", "finite"),
    ("train.epochs=.inf", "finite"),
    ("train.epochs=1e12", "less than or equal to 1000"),
    ("train.batch_size=1.0e+12", "less than or equal to 4096"),
    ("train.seed=-1", "greater than or equal to 0"),
    ("generation.temperature=.nan", "finite"),
])
def test_absurd_numbers_are_refused_by_the_schema(override, says):
    with pytest.raises(UserError, match=says):
        apply_overrides(load_recipe(DEMO), [override])


def test_a_20000_word_prompt_is_refused_with_a_short_message():
    with pytest.raises(UserError) as e:
        apply_overrides(load_recipe(DEMO), ["data.prompt=" + "word " * 20000])
    assert "data.prompt" in e.value.message and "at most 4000 characters" in e.value.message
    assert len(e.value.message) < 400  # the value is abbreviated, not echoed


def test_the_estimate_refuses_what_fits_no_device_anywhere():
    from wizard.estimate import estimate_memory, refuse_impossible
    from wizard.machine import GpuInfo

    recipe = apply_overrides(load_recipe(ROOT / "recipes" / "qwen2-vl-2b-coco-en.yaml"),
                             ["train.batch_size=4096", "train.max_target_length=32768", "tuning.strategy=full"])
    with pytest.raises(UserError, match="more than any GPU has"):
        refuse_impossible(estimate_memory(recipe, [GpuInfo(0, "NVIDIA H100", 80 * 2**30)], suggest=False))
    refuse_impossible(estimate_memory(load_recipe(DEMO), [GpuInfo(0, "NVIDIA H100", 80 * 2**30)]))  # fits


def test_unknown_target_modules_fail_before_the_run_folder_exists(tmp_path):
    # matched from the model's config on the meta device (wizard.preflight), with peft's own matcher
    proc = run_cli("run", str(DEMO), "tuning.lora.target_modules=[nonexistent_proj, q_prj, v_proj]", "--plain",
                   "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert "no module named nonexistent_proj, q_prj in its language model" in message and "(command line)" in message
    assert "did you mean q_proj?" in message
    assert not message.startswith("Failed")  # no library noise before the message
    _no_traceback(proc)
    assert not any((tmp_path / "runs").iterdir())  # checked from the config, before anything was written


# ----------------------------------------------------------------------------- 7. markup
def test_user_text_with_rich_markup_prints_as_itself(tmp_path):
    for name in ("[/x].yaml", "[bold]words[/bold].yaml"):
        proc = run_cli("run", str(tmp_path / name), "--dry-run")
        assert proc.returncode == 2, proc.stderr
        _no_traceback(proc)
        assert f"recipe file not found: {tmp_path / name}" in "".join(proc.stderr.splitlines())


# ----------------------------------------------------------------------------- 8. strict YAML
def _recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    text = DEMO.read_text(encoding="utf-8").replace("train:\n", "train:\n  learning_rate: 0.5\n", 1)
    path = _recipe(tmp_path, text)
    first = text.splitlines().index("  learning_rate: 0.5") + 1
    again = [i + 1 for i, line in enumerate(text.splitlines()) if line.strip().startswith("learning_rate:")][1]
    proc = run_cli("run", str(path), "--dry-run")
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert f"line {again}: key 'learning_rate' is given twice (also on line {first})" in message
    assert "delete one of the two" in message


def test_true_is_not_a_batch_size(tmp_path):
    text = DEMO.read_text(encoding="utf-8")
    old = next(line for line in text.splitlines() if line.strip().startswith("batch_size:"))
    path = _recipe(tmp_path, text.replace(old, "  batch_size: true", 1))
    line = text.splitlines().index(old) + 1
    proc = run_cli("run", str(path), "--dry-run")
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert "train.batch_size = True" in message and "must be a number, not true/false" in message
    assert f"(line {line})" in message and "hint: e.g. train.batch_size=" in message


def test_devices_naming_a_gpu_this_machine_lacks_is_refused(tmp_path):
    path = _recipe(tmp_path, DEMO.read_text(encoding="utf-8").replace("devices: cpu", "devices: [0]"))
    assert "devices: [0]" in path.read_text()
    proc = run_cli("run", str(path), "--runs-dir", str(tmp_path / "runs"),
                   env=cli_env(CAPTION_WIZARD_FAKE_GPUS="none"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert "this machine has no GPU 0" in message and f"{path} line" in message and "launch.devices=cpu" in message
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ----------------------------------------------------------------------------- 9. torn events line
def test_a_torn_last_event_line_is_repaired_before_the_next_event(tmp_path):
    from wizard.rundir.events import EventReader, EventWriter, read_events

    path = tmp_path / "events.jsonl"
    path.write_text('{"t": 1, "type": "log", "step": 1}\n{"t": 2, "type": "log", "st', encoding="utf-8")
    reader = EventReader(path)
    assert [e["step"] for e in reader.poll()] == [1]
    writer = EventWriter(path)  # a resumed training process appends after the kill
    writer.emit("log", step=2)
    writer.close()
    assert [e["step"] for e in read_events(path)] == [1, 2]
    assert [e["step"] for e in reader.poll()] == [2]
    assert [e["step"] for e in EventReader(path).poll()] == [1, 2]


def test_events_glued_to_a_torn_line_by_an_older_writer_are_still_read(tmp_path):
    from wizard.rundir.events import read_events

    path = tmp_path / "events.jsonl"
    path.write_text('{"t": 1, "type": "log", "st{"t": 2, "type": "log", "step": 2}\n', encoding="utf-8")
    assert [e["step"] for e in read_events(path)] == [2]


# ----------------------------------------------------------------------------- 10. the small ones
def test_caption_of_a_missing_run_folder_says_the_folder_does_not_exist(tmp_path):
    (tmp_path / "runs").mkdir()
    proc = run_cli("caption", "runs/nope", "img.png", cwd=tmp_path)
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert "runs/nope: no such folder" in message and "hub" not in message.split("hint")[0].lower()


def test_new_out_folder_writes_the_recipe_inside_it(tmp_path):
    proc = run_cli("new", "--defaults", "--out", f"{tmp_path}/", "--force")
    assert proc.returncode == 0, proc.stderr
    written = list(tmp_path.glob("*.yaml"))
    assert len(written) == 1 and load_recipe(written[0]).name == written[0].stem


def test_the_hub_password_is_never_printed(tmp_path):
    env = cli_env(MODELSCOPE_ENDPOINT="http://alice:s3cret@127.0.0.1:9", MODELSCOPE_CACHE=str(tmp_path))
    proc = run_cli("download", "Qwen/Qwen2-VL-2B-Instruct", env=env)
    assert proc.returncode == 2
    assert "s3cret" not in proc.stdout + proc.stderr and "alice:***@127.0.0.1" in proc.stderr


def test_a_huge_image_is_decoded_at_a_capped_size(tmp_path):
    from PIL import Image

    from wizard.caption import MAX_DECODE_PIXELS, read_image

    for suffix in ("jpg", "png"):
        path = tmp_path / f"big.{suffix}"
        Image.new("RGB", (6000, 3000), (200, 30, 30)).save(path)
        img = read_image(path)
        assert img.width * img.height <= MAX_DECODE_PIXELS
        assert abs(img.width / img.height - 2.0) < 0.01 and img.getpixel((10, 10))[0] > 150


def test_a_recipe_over_1_mb_is_refused_unread(tmp_path):
    path = _recipe(tmp_path, DEMO.read_text(encoding="utf-8") + "#" * 1_100_000 + "\n")
    proc = run_cli("run", str(path), "--dry-run")
    assert proc.returncode == 2
    assert "too big for a recipe" in proc.stderr
