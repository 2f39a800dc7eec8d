"""The fused gated MLP (wizard/train/swiglu.py): the same loss and gradients, one MLP-wide tensor
fewer kept for backward per token and layer."""

from __future__ import annotations

import pytest
import torch

from wizard.train.swiglu import fuse_gated_mlps, silu_mul

SMALL = dict(hidden=128, intermediate=352, heads=4, kv_heads=2, vision_width=64, vision_heads=4,
             layers=2, vision_depth=1)


def test_silu_mul_matches_autograd_bit_for_bit():
    torch.manual_seed(0)
    gate = torch.randn(3, 17, 64, requires_grad=True)
    up = torch.randn(3, 17, 64, requires_grad=True)
    weight = torch.randn(3, 17, 64)
    (torch.nn.functional.silu(gate) * up * weight).sum().backward()
    expected = gate.grad.clone(), up.grad.clone()
    gate.grad = up.grad = None
    (silu_mul(gate, up) * weight).sum().backward()
    assert torch.equal(gate.grad, expected[0]) and torch.equal(up.grad, expected[1])


@pytest.fixture(scope="module")
def lora_model_and_batch(tmp_path_factory):
    from wizard.chat import resolve_prompt
    from wizard.demo.realshape import build_realshape, realshape_examples
    from wizard.recipe import Recipe
    from wizard.train.collate import CaptionCollator, build_dataset
    from wizard.train.load import load_model

    folder = build_realshape(tmp_path_factory.mktemp("swiglu"), **SMALL)
    recipe = Recipe.model_validate({
        "name": "t", "model": {"id": str(folder), "source": "local"},
        "data": {"dataset": "x", "max_pixels": 112 * 112, "min_pixels": 3136},
        "tuning": {"strategy": "lora", "lora": {"rank": 8, "dropout": 0.0, "modules_to_save": []}},
        "train": {"batch_size": 2, "precision": "fp32", "max_target_length": 32, "gradient_checkpointing": False},
        "launch": {"devices": "cpu"}})
    torch.manual_seed(0)
    model, processor = load_model(recipe, folder, for_training=True, device="cpu")
    model.train()
    data = build_dataset(realshape_examples(2), processor, resolve_prompt(recipe), max_target_length=32)
    return model, CaptionCollator(processor, data)([data[0], data[1]])


def _loss_grads_and_saved_bytes(model, batch):
    from wizard.train.trainer import sliced_loss

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = sliced_loss(model, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    return loss.detach(), grads, sum(saved.values())


def test_the_language_model_mlps_are_fused_with_the_same_loss_and_gradients(lora_model_and_batch):
    model, batch = lora_model_and_batch
    mlps = [m for m in model.modules() if getattr(m, "_wizard_swiglu", False)]
    assert len(mlps) == SMALL["layers"]  # load_model fused each language-model layer's MLP (the tower has none)
    fused = _loss_grads_and_saved_bytes(model, batch)
    for m in mlps:  # back to transformers' own forward
        del m.forward, m._wizard_swiglu
    try:
        plain = _loss_grads_and_saved_bytes(model, batch)
    finally:
        assert fuse_gated_mlps(model) == SMALL["layers"]
        assert all("_fused_forward" in m.forward.__name__ for m in mlps)
    assert torch.equal(fused[0], plain[0])
    assert fused[1].keys() == plain[1].keys() and all(torch.equal(fused[1][k], plain[1][k]) for k in fused[1])
    # one MLP-wide fp32 tensor (SiLU(gate)) per token and layer is no longer kept
    tokens = batch["input_ids"].numel()
    assert plain[2] - fused[2] == SMALL["layers"] * tokens * SMALL["intermediate"] * 4
