"""Logits only where the loss is (wizard.train.trainer.sliced_loss): the same loss and gradients as
the model's own full-logits loss, in fp32, with and without chunks and num_items_in_batch."""

from __future__ import annotations

import pytest
import torch

from wizard.data import Example
from wizard.demo.model import build_model, build_processor
from wizard.demo.shapes import make_shapes
from wizard.train.collate import CaptionCollator, GroupedByLength, build_dataset, grouped_sampler
from wizard.train.trainer import sliced_loss


@pytest.fixture(scope="module")
def batch_and_model():
    processor = build_processor()
    examples = [Example(f"s{i}", s.image, s.captions("en")[:1]) for i, s in enumerate(make_shapes(3, seed=0))]
    data = build_dataset(examples, processor, "Describe this image.", max_target_length=32)
    batch = CaptionCollator(processor, data)([data[0], data[1], data[2]])
    model = build_model(0).float()
    return batch, model


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("num_items", [None, 50])
@pytest.mark.parametrize("chunk", [None, 5])
def test_sliced_loss_equals_the_models_full_logits_loss(batch_and_model, num_items, chunk):
    batch, model = batch_and_model
    n_items = None if num_items is None else torch.tensor(num_items)
    model.zero_grad()
    ref = model(**batch, **({} if n_items is None else {"num_items_in_batch": n_items}))
    ref.loss.backward()
    ref_grads = _grads(model)
    model.zero_grad()
    loss, out = sliced_loss(model, batch, n_items, chunk=chunk)
    loss.backward()
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    assert out.logits.shape[0] == labelled < batch["input_ids"].numel() // 4  # the caption positions only
    torch.testing.assert_close(loss, ref.loss, rtol=1e-6, atol=1e-6)
    grads = _grads(model)
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_grouped_order_is_a_function_of_seed_and_epoch_and_groups_lengths():
    lengths = [10, 50, 11, 52, 12, 51, 13, 53] * 4
    a, b = GroupedByLength(lengths, 4, seed=7), GroupedByLength(lengths, 4, seed=7)
    b.set_epoch(1)
    first, second = list(a), list(b)
    assert sorted(first) == list(range(len(lengths))) and first != second
    a.set_epoch(1)
    assert list(a) == second  # a resumed run sees the same order
    spread = [max(lengths[i] for i in first[k:k + 4]) - min(lengths[i] for i in first[k:k + 4])
              for k in range(0, len(first), 4)]
    assert sum(spread) < 0.5 * 40 * len(spread)  # a plain shuffle mixes ~40 tokens into nearly every batch


def test_same_size_images_keep_the_plain_shuffle(batch_and_model):
    processor = build_processor()
    examples = [Example(f"s{i}", s.image, s.captions("en")[:1]) for i, s in enumerate(make_shapes(4, seed=1))]
    assert grouped_sampler(build_dataset(examples, processor, "Describe.", max_target_length=32), 2, 0) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_loss_keeps_only_the_logits_and_one_number_per_position(dtype):
    # F.cross_entropy would keep an fp32 log-softmax of every position beside the logits (on Qwen's
    # 152k vocabulary, 4 bytes x vocab per caption token); SummedCrossEntropy keeps a log-sum-exp.
    from wizard.estimate import LOSS_CHUNK as ESTIMATED
    from wizard.train.trainer import LOSS_CHUNK, caption_loss

    assert ESTIMATED == LOSS_CHUNK
    torch.manual_seed(0)
    logits = (torch.randn(7, 1000) * 3).to(dtype).requires_grad_()
    targets = torch.randint(0, 1000, (7,))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        loss = caption_loss(logits, targets, chunk=3)
    big = [t for t in saved if t.numel() >= logits.numel()]
    assert len(big) == 1 and big[0].data_ptr() == logits.data_ptr()
    loss.backward()
    ref_logits = logits.detach().float().requires_grad_()
    ref = torch.nn.functional.cross_entropy(ref_logits, targets)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(logits.grad.float(), ref_logits.grad, rtol=tol, atol=tol)
