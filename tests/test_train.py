"""`caption-wizard run` really trains: end to end, QLoRA with real 4-bit layers, a NaN loss, SIGTERM,
a learning rate changed on resume, --dry-run and bad recipes. Real subprocesses throughout."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.train_support import (checkpoint_events, events, kill_backend, losses, nan_backend_script, only_run, run,
                                 start, state, tiny_model, train_env, wait_for, write_recipe)  # noqa: F401


@pytest.mark.slow
def test_a_full_fine_tune_trains_end_to_end_and_the_loss_falls(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, tiny_model, tuning={"strategy": "full"},
                          data={"max_samples": 64, "eval_fraction": 0.1},
                          train={"batch_size": 8, "max_steps": 30, "save_steps": 20, "logging_steps": 5})
    out = run("run", str(recipe), "--plain", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "data: shapes (detected) · 64 images, 128 captions · 58 train / 6 eval" in out.stdout  # front end
    run_dir = only_run(tmp_path / "runs")
    assert state(run_dir)["status"] == "completed"
    assert [e["data"] for e in events(run_dir) if e["type"] == "start"] == ["format shapes"]  # dashboard header
    logged = losses(run_dir)
    steps = sorted(logged)
    assert steps == [5, 10, 15, 20, 25, 30]
    assert logged[30] < 0.6 * logged[5], logged

    ev = events(run_dir)
    start_ev = next(e for e in ev if e["type"] == "start")
    assert start_ev["strategy"] == "full" and start_ev["devices"] == ["cpu"] and not start_ev["resumed"]
    assert 0 < start_ev["trainable_params"] < start_ev["total_params"]  # the vision tower stays frozen
    assert start_ev["total_steps"] == 30 and start_ev["num_eval"] > 0
    log = next(e for e in ev if e["type"] == "log")
    assert log["samples_per_s"] > 0 and log["tokens_per_s"] > 0 and log["grad_norm"] is not None
    assert log["memory"]["kind"] == "cpu" and 0 < log["memory"]["rss"] <= log["memory"]["peak_rss"]
    assert any(e["type"] == "eval" and e["eval_loss"] > 0 for e in ev)
    assert [e["step"] for e in ev if e["type"] == "checkpoint"] == [20, 30]
    end = next(e for e in ev if e["type"] == "end")
    assert end["adapter"] == "adapter" and end["final_loss"] == logged[30]
    assert ev[-1] == {**ev[-1], "type": "status", "status": "completed"}

    assert (run_dir / "adapter" / "model.safetensors").is_file()  # full: a whole model folder
    assert (run_dir / "adapter" / "tokenizer.json").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    lock = json.loads((run_dir / "lock.json").read_text())
    assert lock["dataset"]["fingerprint"] and lock["device"]["kind"] == "cpu" and lock["device"]["threads"] == 1
    assert "step 30/30" in (run_dir / "train.log").read_text()


QLORA_LAYERS = """
import json, sys
from wizard.recipe import load_recipe
from wizard.train.load import load_model
model, _ = load_model(load_recipe(sys.argv[1]), sys.argv[2], for_training=True, device="cpu")
kinds = {n: type(m).__module__ + "." + type(m).__name__ for n, m in model.named_modules()
         if n.endswith(("q_proj.base_layer", "down_proj.base_layer", "attn.qkv", "lm_head"))}
lora_in_vision = [n for n, _ in model.named_parameters() if "lora_" in n and "visual" in n]
print(json.dumps({"kinds": kinds, "lora_in_vision": lora_in_vision}))
"""


@pytest.mark.slow
def test_qlora_uses_real_bitsandbytes_4bit_layers_and_the_loss_falls(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, tiny_model, tuning={"strategy": "qlora", "lora": {"modules_to_save": ["lm_head"]}},
                          train={"batch_size": 8, "max_steps": 12, "save_steps": 100, "logging_steps": 3,
                                 "learning_rate": 0.005})
    probe = subprocess.run([sys.executable, "-c", QLORA_LAYERS, str(recipe), str(tiny_model)], cwd=ROOT,
                           env=train_env(), capture_output=True, text=True, timeout=240)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    lm = [k for n, k in found["kinds"].items() if "language_model" in n]
    assert lm and all(k == "bitsandbytes.nn.modules.Linear4bit" for k in lm), found
    kept = [k for n, k in found["kinds"].items() if "visual" in n or "lm_head" in n]
    assert kept and not any("Linear4bit" in k for k in kept), found  # vision tower and head stay unquantized
    assert found["lora_in_vision"] == []

    out = run("run", str(recipe), "--plain", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = only_run(tmp_path / "runs")
    logged = losses(run_dir)
    assert logged[12] < 0.9 * logged[3], logged
    assert next(e for e in events(run_dir) if e["type"] == "start")["strategy"] == "qlora"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_a_run_nobody_watches_still_gets_its_loss_png(tmp_path, tiny_model):
    """The training process draws loss.png at the end (rank 0), watched or not: here no dashboard at all."""
    from wizard.recipe import load_recipe
    from wizard.runner import create_run

    recipe = write_recipe(tmp_path, tiny_model, train={"max_steps": 4})

    class Resolved:
        path, files, revision = tiny_model, {}, None

    run_dir = create_run(load_recipe(recipe), Resolved(), runs_dir=tmp_path / "runs")
    proc = subprocess.run([sys.executable, "-m", "wizard.train.backend", str(run_dir)], cwd=ROOT, env=train_env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert state(run_dir)["status"] == "completed"
    png = run_dir / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


NAN_RUN = nan_backend_script('True')


@pytest.mark.slow
def test_a_nan_loss_fails_the_run_with_a_clear_message_and_saves_nothing_bad(tmp_path, tiny_model):
    from wizard.recipe import load_recipe
    from wizard.runner import create_run

    recipe = write_recipe(tmp_path, tiny_model, train={"save_steps": 2, "max_steps": 6})

    class Resolved:
        path, files, revision = tiny_model, {}, None

    run_dir = create_run(load_recipe(recipe), Resolved(), runs_dir=tmp_path / "runs")
    proc = subprocess.run([sys.executable, "-c", NAN_RUN, str(run_dir)], cwd=ROOT, env=train_env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    st = state(run_dir)
    assert st["status"] == "failed"
    error = next(e for e in events(run_dir) if e["type"] == "error")
    assert "the loss became nan at step 3" in error["message"] and "learning_rate" in error["message"]
    assert [e["step"] for e in events(run_dir) if e["type"] == "checkpoint"] == [2]
    assert not (run_dir / "adapter").exists()
    assert sorted(losses(run_dir)) == [1, 2]


@pytest.mark.slow
def test_sigterm_stops_at_a_checkpoint_and_an_edited_learning_rate_applies_on_resume(tmp_path, tiny_model):
    recipe = write_recipe(tmp_path, tiny_model, train={"max_steps": 40, "save_steps": 3, "scheduler": "constant",
                                                         "learning_rate": 0.002})
    runs_dir = tmp_path / "runs"
    proc = start("run", str(recipe), "--plain", "--runs-dir", str(runs_dir), cwd=tmp_path)
    try:
        wait_for(lambda: checkpoint_events(runs_dir), what="the first checkpoint")
        kill_backend(only_run(runs_dir), signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    run_dir = only_run(runs_dir)
    st = state(run_dir)
    assert st["status"] == "stopped" and st["last_checkpoint"] == f"checkpoints/checkpoint-{st['step']}"
    stop_step = st["step"]

    text = (run_dir / "recipe.yaml").read_text()
    (run_dir / "recipe.yaml").write_text(text.replace("learning_rate: 0.002", "learning_rate: 0.0005")
                                         .replace("max_steps: 40", f"max_steps: {stop_step + 3}")
                                         .replace("seed: 42", "seed: 7"))
    out = run("resume", str(run_dir), "--plain", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "train.learning_rate: 0.002 -> 0.0005" in out.stdout
    assert f"train.max_steps: 40 -> {stop_step + 3}" in out.stdout
    assert "train.seed in checkpoint 42, recipe says 7: using 42" in out.stdout
    rates = {e["step"]: e["learning_rate"] for e in events(run_dir) if e["type"] == "log"}
    assert rates[stop_step] == 0.002 and rates[stop_step + 1] == 0.0005
    assert state(run_dir)["status"] == "completed" and state(run_dir)["step"] == stop_step + 3


def test_dry_run_prints_the_resolved_recipe_hash_and_memory_and_trains_nothing(tmp_path):
    out = run("run", str(ROOT / "recipes" / "demo-shapes.yaml"), "train.learning_rate=3e-4", "--dry-run",
              "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "learning_rate: 0.0003" in out.stdout
    import yaml

    assert yaml.safe_load(out.stdout)["train"]["learning_rate"] == 3e-4  # piped: stdout is the YAML alone
    assert out.stdout.splitlines()[0].endswith("demo-shapes.yaml train.learning_rate=3e-4")  # how to replay it
    assert "recipe hash: " in out.stderr and "Memory estimate" in out.stderr
    assert "steps: 290 " in out.stderr and "measured" in out.stderr  # the plan, as in the wizard's summary
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("content, args, message", [
    (None, ["missing.yaml"], "recipe file not found"),
    ("name: x\nmodel: {id: m}\ndata: {dataset: shapes}\ntrain: {batch_sise: 4}\n", [], "did you mean train.batch_size"),
    ("name: x\nmodel: {id: m}\ndata: {dataset: shapes}\n", ["train.learning_rate=fast"], "train.learning_rate"),
    ("name: [unclosed\n", [], "invalid YAML"),
])
def test_bad_recipes_exit_2_without_a_traceback(tmp_path, content, args, message):
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
        args = [str(path), *args]
    out = run("run", *args, "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert out.returncode == 2
    stderr = " ".join(out.stderr.split())  # rich wraps long lines
    assert message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_bad_data_exits_2_names_the_rows_and_leaves_no_run_folder(tmp_path, tiny_model):
    from tests.fixtures_data import build_imagefolder

    built = build_imagefolder(tmp_path, 10)  # 4 bad rows of 15: over the 5% limit
    recipe = write_recipe(tmp_path, tiny_model, data={"dataset": str(built.path), "format": "auto"})
    out = run("run", str(recipe), "--plain", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "metadata.jsonl:3: image not found: missing.png" in out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    runs = tmp_path / "runs"  # checked by the front end, before a run folder exists
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.slow
def test_the_demo_recipe_trains_in_under_3_minutes_and_the_loss_falls(demo_run):
    # demo_run (tests/conftest_eval.py) is `caption-wizard run recipes/demo-shapes.yaml`, trained once
    # per session and shared with the caption/eval/export tests.
    from tests.conftest_eval import TRAIN_SECONDS

    seconds = TRAIN_SECONDS[demo_run]
    logged = losses(demo_run)
    first, last = logged[min(logged)], logged[max(logged)]
    assert last < 0.6 * first, logged
    assert seconds < 180, f"the demo took {seconds:.0f} s"
