"""The model plan (wizard/model.py) and the memory estimate agree with the model that really loads.

A Qwen2-VL with Qwen's vocabulary and special-token ids but small widths (wizard.demo.realshape)
is built once; the estimate reads its config.json, and its weights row must equal the bytes of
the parameters the plan loads, for each strategy.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, cli_env
from wizard.estimate import estimate_memory
from wizard.model import load_base, model_dims, plan_model, resolve_precision
from wizard.recipe import Recipe

SMALL = dict(hidden=128, intermediate=352, heads=4, kv_heads=2, vision_width=64, vision_heads=4,
             layers=2, vision_depth=1)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    from wizard.demo.realshape import build_realshape

    return build_realshape(tmp_path_factory.mktemp("small-realshape"), **SMALL)


def recipe(folder, strategy: str, batch: int = 2, **train) -> Recipe:
    return Recipe.model_validate({
        "name": "t", "model": {"id": str(folder), "source": "local"},
        "data": {"dataset": "x", "max_pixels": 448 * 448, "min_pixels": 3136},
        "tuning": {"strategy": strategy, "lora": {"rank": 8, "modules_to_save": []}},
        "train": {"batch_size": batch, "precision": "fp32", "max_target_length": 32, **train},
        "launch": {"devices": "cpu"},
    })


def weights_row(r: Recipe) -> int:
    return next(n for label, n, _ in estimate_memory(r, []).rows if label == "model weights")


def real_bytes(model) -> int:
    """Parameters as stored (4-bit: packed bytes) plus bitsandbytes' quantization constants."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    for p in model.parameters():
        state = getattr(p, "quant_state", None)
        if state is None:
            continue
        for t in (state.absmax, state.code, getattr(state, "offset", None)):
            total += t.numel() * t.element_size() if torch.is_tensor(t) else 0
        nested = getattr(state, "state2", None)
        if nested is not None:
            total += sum(t.numel() * t.element_size() for t in (nested.absmax, nested.code))
    return total


def test_dims_from_config_count_every_parameter(small_model):
    dims, _ = model_dims(recipe(small_model, "lora"))
    model = load_base(plan_model(recipe(small_model, "lora"), small_model, purpose="infer", device="cpu"))
    assert dims.from_config and dims.tied and dims.vocab == 151936
    assert dims.total == sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for n, p in model.named_parameters() if ".visual." in f".{n}")
    assert dims.vision == vision


@pytest.mark.parametrize("strategy", ["lora", "full", "qlora"])
def test_the_weights_row_is_what_the_plan_loads(small_model, strategy):
    r = recipe(small_model, strategy)
    model = load_base(plan_model(r, small_model, purpose="train", device="cpu"))
    got = real_bytes(model)
    if strategy == "qlora":
        assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
        assert weights_row(r) == pytest.approx(got, rel=0.01)
    else:
        assert weights_row(r) == got
    # nothing was upcast behind the plan's back: every non-4-bit weight is at the planned dtype
    assert {p.dtype for p in model.parameters() if p.dtype != torch.uint8} == {torch.float32}


def test_a_local_folder_is_estimated_from_its_config_not_assumed_2b(small_model):
    est = estimate_memory(recipe(small_model, "lora"), [])
    assert any("config.json" in n for n in est.notes)
    assert not any("assume" in n for n in est.notes)
    assert weights_row(recipe(small_model, "lora")) < 0.2e9  # a 2B guess would be ~9 GB in fp32


def test_logits_row_follows_the_caption_length_not_the_image():
    def logits(*overrides):
        r = Recipe.model_validate({"name": "t", "model": {"id": "Qwen/Qwen2-VL-2B-Instruct"},
                                   "data": {"dataset": "x"}, "launch": {"devices": "cpu"}})
        from wizard.recipe import apply_overrides

        rows = estimate_memory(apply_overrides(r, list(overrides)), []).rows
        return next(n for label, n, _ in rows if label == "logits")

    assert logits("data.max_pixels=802816") == logits("data.max_pixels=200704")
    # fp32 on the CPU: logits + their gradient per caption position (batch 8 x 32 fits one loss chunk)
    assert logits("train.max_target_length=32") == 2 * logits("train.max_target_length=16")
    # beyond one chunk of 256 positions, the loss's fp32 chunk comes on top
    assert logits("train.max_target_length=64") > 2 * logits("train.max_target_length=32")


def test_auto_precision_never_picks_emulated_bf16(monkeypatch):
    calls = []

    def supported(including_emulation=True):
        calls.append(including_emulation)
        return including_emulation  # a T4: bf16 only by emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert resolve_precision("auto", "cuda:0") == "fp16" and calls == [False]
    assert resolve_precision("auto", "cpu") == "fp32"


def test_fp16_with_qwen_warns_about_overflow():
    r = Recipe.model_validate({"name": "t", "model": {"id": "Qwen/Qwen2-VL-2B-Instruct"}, "data": {"dataset": "x"},
                               "train": {"precision": "fp16"}})
    plan = plan_model(r, purpose="train", device="cuda:0")
    assert plan.precision == "fp16" and any("overflow" in w for w in plan.warnings)


def test_qlora_trainable_parts_are_fp32_and_frozen_parts_stay_as_loaded(small_model):
    from wizard.train.load import load_model

    r = recipe(small_model, "qlora")
    r.train.precision = "bf16"
    model, _ = load_model(r, small_model, for_training=True, device="cpu")
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    frozen = {p.dtype for p in model.parameters() if not p.requires_grad and p.dtype != torch.uint8}
    assert trainable == {torch.float32}  # LoRA matrices: fp32 master weights
    assert frozen == {torch.bfloat16}  # vision tower, embeddings, norms: the compute dtype, not upcast


@pytest.mark.slow
def test_estimate_is_within_20_percent_of_the_measured_peak_rss(small_model, tmp_path):
    """Each strategy (bench/realshape.py does each at two batch sizes at the real widths), trained 3 steps through caption-wizard's training path in
    its own process (bench/realshape.py's child), against the estimate of the same recipe."""
    # checkpointing auto (the default) turns it off here; "on" is what a tight GPU gets
    for strategy, batch, gc in (("lora", 4, "auto"), ("lora", 4, "on"), ("qlora", 2, "auto"), ("full", 2, "auto")):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "realshape.py"), "--child", "project", "--model", str(small_model),
             "--strategy", strategy, "--batch", str(batch), "--steps", "3", "--checkpointing", gc],
            capture_output=True, text=True, cwd=ROOT, env=cli_env(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)),
            timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        peak = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss"]
        checkpointing = {"auto": "auto", "on": True}[gc]
        est = estimate_memory(recipe(small_model, strategy, batch, gradient_checkpointing=checkpointing), [])
        assert 0.8 <= est.per_device_bytes / peak <= 1.2, (strategy, batch, gc, est.per_device_bytes, peak)


@pytest.mark.slow
def test_gpu_check_runs_in_its_cpu_mode(small_model, tmp_path):
    (tmp_path / "qwen2vl-cpu").symlink_to(small_model)  # the reduced model, already built
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--cpu", "--strategies", "lora", "--batches", "1",
         "--steps", "3", "--models-dir", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, cwd=ROOT, env=cli_env(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())
    assert row["strategy"] == "lora" and row["batch"] == 1
    assert row["caption_wizard"]["tokens_s"] > 0 and row["bare"]["tokens_s"] > 0
    assert 0.8 <= row["estimate_over_measured"] <= 1.2
    assert "tokens/s caption-wizard" in proc.stdout


def test_peak_rss_is_the_process_own_not_its_forked_parents():
    # ru_maxrss survives exec: a training process started by a big parent (this test runner, after
    # tests that loaded models) reported the parent's size as its own peak, and the estimate test
    # above failed only in the full suite. VmHWM belongs to the process's own memory map.
    code = ("import resource, sys; sys.path.insert(0, sys.argv[1]); "
            "from wizard.machine import peak_rss; "
            "print(peak_rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)")
    ballast = bytearray(600 * 2**20)  # touched: 600 MiB resident in this process
    ballast[:: 4096] = b"\x01" * len(ballast[:: 4096])
    try:
        out = subprocess.run([sys.executable, "-c", code, str(ROOT)], capture_output=True, text=True, check=True)
    finally:
        del ballast
    own, inherited = map(int, out.stdout.split())
    assert own < 300 * 2**20 < 600 * 2**20 <= inherited
