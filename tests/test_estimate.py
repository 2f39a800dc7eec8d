"""Memory estimate (wizard/estimate.py) and GPU detection (wizard/machine.py)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from wizard.ask.summary import render_estimate
from wizard.estimate import estimate_memory
from wizard.machine import GiB, GpuInfo, _visible, detect_gpus
from wizard.recipe import Recipe, apply_overrides, load_recipe

from .conftest import ROOT

QWEN7B = "Qwen/Qwen2-VL-7B-Instruct"
QWEN2B = "Qwen/Qwen2-VL-2B-Instruct"
H100 = GpuInfo(0, "NVIDIA H100", 80 * GiB)
RTX24 = GpuInfo(0, "NVIDIA GeForce RTX 4090", 24 * GiB)


def recipe(model: str = QWEN2B, *overrides: str) -> Recipe:
    r = Recipe.model_validate({"name": "t", "model": {"id": model}, "data": {"dataset": "x"}})
    return apply_overrides(r, list(overrides))


def need(r: Recipe, gpus=(H100,)) -> int:
    return estimate_memory(r, list(gpus)).per_device_bytes


def text_of(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=140, color_system=None).print(renderable)
    return out.getvalue()


@pytest.mark.parametrize("model", [QWEN2B, QWEN7B, "Qwen/Qwen3-VL-4B-Instruct"])
def test_qlora_lora_full_in_order(model):
    q, lo, full = (need(recipe(model, f"tuning.strategy={s}")) for s in ("qlora", "lora", "full"))
    assert q < lo < full
    assert full > 2 * lo  # AdamW states for every weight dwarf an adapter


def test_bigger_model_batch_pixels_and_no_checkpointing_need_more():
    base = need(recipe())
    assert need(recipe(QWEN7B)) > base
    assert need(recipe(QWEN2B, "train.batch_size=16")) > base > need(recipe(QWEN2B, "train.batch_size=4"))
    assert need(recipe(QWEN2B, "data.max_pixels=802816")) > base > need(recipe(QWEN2B, "data.max_pixels=200704"))
    checkpointed = need(recipe(QWEN2B, "train.gradient_checkpointing=true"))
    assert need(recipe(QWEN2B, "train.gradient_checkpointing=false")) > checkpointed
    assert need(recipe(QWEN2B, "tuning.lora.rank=128", "tuning.strategy=lora")) > need(
        recipe(QWEN2B, "tuning.lora.rank=8", "tuning.strategy=lora"))
    assert need(recipe(QWEN2B, "train.precision=fp32", "tuning.strategy=lora")) > need(
        recipe(QWEN2B, "train.precision=bf16", "tuning.strategy=lora"))


def test_checkpointing_auto_is_off_when_the_model_fits_with_room_and_on_when_it_does_not():
    from wizard.estimate import checkpointing

    r = recipe(QWEN2B, "tuning.strategy=lora")
    assert r.train.gradient_checkpointing == "auto"  # the default
    off = need(recipe(QWEN2B, "tuning.strategy=lora", "train.gradient_checkpointing=false"))
    on = need(recipe(QWEN2B, "tuning.strategy=lora", "train.gradient_checkpointing=true"))
    # an 80 GB H100 holds the 2B model without checkpointing: auto turns it off (faster) ...
    assert off <= 0.8 * H100.total_bytes
    assert checkpointing(r, [H100])[0] is False and need(r, [H100]) == off
    est = estimate_memory(r, [H100])
    assert any("gradient checkpointing (auto): off" in n for n in est.notes)
    # ... a 24 GB card does not (the activations of 28 layers for a batch of 8): on
    assert off > 0.8 * RTX24.total_bytes
    on_small, why = checkpointing(r, [RTX24])
    assert on_small is True and "on, to save memory" in why and need(r, [RTX24]) == on
    # no GPU detected for a GPU run: nothing to compare with, keep the memory-safe choice
    assert checkpointing(r, [])[0] is True
    # an explicit value is never second-guessed
    assert checkpointing(recipe(QWEN2B, "train.gradient_checkpointing=false"), [RTX24])[0] is False
    assert checkpointing(recipe(QWEN2B, "train.gradient_checkpointing=true"), [H100])[0] is True
    # on the CPU: half the RAM; several CPU processes each need their own copy
    cpu = recipe(QWEN2B, "tuning.strategy=lora", "launch.devices=cpu")
    one = estimate_memory(recipe(QWEN2B, "tuning.strategy=lora", "launch.devices=cpu",
                                 "train.gradient_checkpointing=false"), [], ram_bytes=64 * GiB).per_device_bytes
    assert checkpointing(cpu, [], ram_bytes=int(2.5 * one))[0] is False
    assert checkpointing(cpu, [], ram_bytes=int(1.5 * one))[0] is True
    two = apply_overrides(cpu, ["launch.processes=2"])
    assert checkpointing(two, [], ram_bytes=int(2.5 * one))[0] is True


def test_rows_name_every_part_of_the_formula():
    est = estimate_memory(recipe(QWEN7B, "tuning.strategy=qlora"), [RTX24])
    labels = [label for label, _, _ in est.rows]
    for part in ("model weights", "LoRA adapter", "gradients + AdamW states", "activations", "logits", "runtime"):
        assert part in labels
    assert sum(n for _, n, _ in est.rows) == est.per_device_bytes
    weights = dict((label, note) for label, _, note in est.rows)["model weights"]
    assert "4-bit nf4" in weights and "bf16" in weights
    # a 7B QLoRA fits on a 24 GB card (the point of QLoRA)
    assert est.fits and est.warning is None and est.suggestion is None


def test_7b_full_finetune_on_24gb_warns_with_a_suggestion_that_fits():
    r = recipe(QWEN7B, "tuning.strategy=full")
    est = estimate_memory(r, [RTX24])
    assert est.fits is False
    assert "GPU 0 has 24.0 GiB" in est.warning and "run out of memory" in est.warning
    assert est.suggestion.startswith("switch to")
    assert est.suggested_overrides
    fixed = apply_overrides(r, est.suggested_overrides)
    assert estimate_memory(fixed, [RTX24]).fits  # the suggestion really makes it fit


def test_suggestion_tries_batch_then_pixels_when_the_strategy_is_already_qlora():
    r = recipe(QWEN7B, "tuning.strategy=qlora", "train.batch_size=64")
    est = estimate_memory(r, [RTX24])
    assert est.fits is False
    assert "batch_size" in est.suggestion and "grad_accum" in est.suggestion
    fixed = apply_overrides(r, est.suggested_overrides)
    assert fixed.train.batch_size * fixed.train.grad_accum == 64  # same effective batch
    assert estimate_memory(fixed, [RTX24]).fits


def test_nothing_fits_says_so_plainly():
    tiny = GpuInfo(0, "tiny", 4 * GiB)
    est = estimate_memory(recipe(QWEN7B, "tuning.strategy=full"), [tiny])
    assert est.fits is False and est.suggestion.startswith("nothing tried fits")
    assert est.suggested_overrides == []


def test_several_gpus_each_hold_a_full_copy():
    r1 = recipe(QWEN7B, "launch.devices=[0]")
    r2 = recipe(QWEN7B, "launch.devices=[0,1]")
    two = [H100, GpuInfo(1, "NVIDIA H100", 80 * GiB)]
    e1, e2 = estimate_memory(r1, two), estimate_memory(r2, two)
    assert e1.per_device_bytes == e2.per_device_bytes
    assert e2.total_bytes == 2 * e2.per_device_bytes and e2.devices == ["cuda:0", "cuda:1"]
    assert "each holds a full copy" in e2.where


def test_cpu_demo_estimates_ram_and_says_so():
    demo = load_recipe(ROOT / "recipes" / "demo-shapes.yaml")
    est = estimate_memory(demo, [], ram_bytes=8 * GiB)
    assert est.devices == ["cpu"] and "RAM" in est.where
    assert est.capacity_bytes == 8 * GiB and est.fits
    assert est.per_device_bytes < 2 * GiB
    assert "fp32" in dict((label, note) for label, _, note in est.rows)["model weights"]


def test_no_gpu_here_gives_figures_without_a_verdict():
    est = estimate_memory(recipe(QWEN2B), [])
    assert est.fits is None and est.warning is None
    assert any("no CUDA GPU" in n for n in est.notes)


def test_render_shows_table_total_warning_and_suggestion():
    out = text_of(render_estimate(estimate_memory(recipe(QWEN7B, "tuning.strategy=full"), [RTX24])))
    assert "Memory estimate" in out and "gradients + AdamW states" in out
    assert "of 24.0 GiB" in out and "warning:" in out and "suggestion: switch to" in out
    ok = text_of(render_estimate(estimate_memory(recipe(QWEN2B), [H100])))
    assert "fits" in ok and "warning" not in ok


# ----------------------------------------------------------------------------- GPU detection
def test_fake_gpu_spec_and_errors(monkeypatch):
    monkeypatch.setenv("CAPTION_WIZARD_FAKE_GPUS", "NVIDIA A10G:24")
    assert detect_gpus() == [GpuInfo(0, "NVIDIA A10G", 24 * GiB)]
    monkeypatch.setenv("CAPTION_WIZARD_FAKE_GPUS", "none")
    assert detect_gpus() == []
    monkeypatch.setenv("CAPTION_WIZARD_FAKE_GPUS", "A10G:lots")
    with pytest.raises(ValueError, match="NAME:GiB"):
        detect_gpus()


def test_no_driver_means_no_gpu(monkeypatch):
    monkeypatch.delenv("CAPTION_WIZARD_FAKE_GPUS", raising=False)
    assert isinstance(detect_gpus(), list)  # this CI machine: [] (no NVML library), never an exception


def test_cuda_visible_devices_renumbers(monkeypatch):
    found = [GpuInfo(0, "a", 1), GpuInfo(1, "b", 2), GpuInfo(2, "c", 3)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert _visible(found) == [GpuInfo(0, "c", 3), GpuInfo(1, "a", 1)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _visible(found) == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert _visible(found) == found
