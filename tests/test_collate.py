"""The collator: what the model sees for a batch (labels masked to the caption; the right images)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from wizard.data import Example  # noqa: E402
from wizard.demo.model import build_processor  # noqa: E402
from wizard.demo.shapes import make_shapes  # noqa: E402
from wizard.train.collate import IGNORE, CaptionCollator, build_dataset  # noqa: E402


def _examples(seed: int, n: int) -> list[Example]:
    return [Example(f"s{seed}-{i}", s.image, s.captions("en")) for i, s in enumerate(make_shapes(n, seed=seed))]


def test_eval_batches_carry_the_eval_images_not_the_training_ones():
    # One collator serves both sets; an eval item must never be paired with a training image
    # (that made the reported eval loss far higher than the model's real loss).
    processor = build_processor()
    train = build_dataset(_examples(0, 4), processor, "Describe this image.", max_target_length=32)
    evals = build_dataset(_examples(1, 4), processor, "Describe this image.", max_target_length=32)
    collate = CaptionCollator(processor, train)
    batch = collate([evals[0], evals[1]])
    expected = torch.cat([px for px, _ in evals.images.get([evals[0].image, evals[1].image])])
    assert torch.equal(batch["pixel_values"], expected)
    train_pixels = torch.cat([px for px, _ in train.images.get([0, 1])])
    assert not torch.equal(batch["pixel_values"], train_pixels)


def test_only_caption_tokens_count_in_the_loss():
    processor = build_processor()
    data = build_dataset(_examples(0, 2), processor, "Describe this image.", max_target_length=32)
    items = [data[0], data[1]]  # one item per caption: image 0's two phrasings
    batch = CaptionCollator(processor, data)(items)
    tok = processor.tokenizer
    examples = _examples(0, 2)
    for row in range(2):
        kept = batch["labels"][row][batch["labels"][row] != IGNORE].tolist()
        text = tok.decode(kept)
        assert text.endswith("<|im_end|>")
        assert text.removesuffix("<|im_end|>").strip() == examples[items[row].image].captions[row]
        image_id = tok.convert_tokens_to_ids("<|image_pad|>")
        assert image_id not in kept


def test_uncached_images_are_processed_in_dataloader_workers_with_the_same_batches():
    # Sets too big for the pixel cache: each batch's images are decoded in worker processes. The
    # batches must be exactly those of the training thread, and tokens are counted where the
    # trainer sees the batch (a counter inside the collator would stay in the worker).
    from torch.utils.data import DataLoader

    from wizard.train.collate import TokenCounter, loader_workers

    processor = build_processor()
    data = build_dataset(_examples(0, 6), processor, "Describe this image.", max_target_length=32, cache=False)
    assert not data.images.cached and loader_workers(data) >= 1
    collate = CaptionCollator(processor, data)
    here = list(DataLoader(data, batch_size=4, collate_fn=collate, num_workers=0))
    there = list(DataLoader(data, batch_size=4, collate_fn=collate, num_workers=loader_workers(data)))
    assert len(here) == len(there) == 3
    counter = TokenCounter()
    for a, b in zip(here, there):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        counter.add(b)
    from wizard.train.collate import _widen

    rows = [_widen(it, data.prompt, data.images.get([it.image])[0][1])[0] for it in data.items]
    assert counter.tokens == sum(len(r) for r in rows)  # every non-padding token, once


def test_pixels_are_kept_only_when_an_image_comes_back():
    # One epoch with one caption per image: keeping 4.8 MB of pixels per 448 px image would only
    # hold memory. Two epochs, or two captions per image: each image is processed once and kept.
    from wizard.recipe import Recipe
    from wizard.train.collate import pixel_cache

    def recipe(**train):
        return Recipe.model_validate({"name": "t", "model": {"id": "m"}, "data": {"dataset": "x"}, "train": train})

    one_each = [Example(e.id, e.image, e.captions[:1]) for e in _examples(0, 8)]
    assert pixel_cache(recipe(epochs=1), one_each) is False
    assert pixel_cache(recipe(epochs=2), one_each) is None  # cached when it fits the pixel budget
    assert pixel_cache(recipe(max_steps=2, batch_size=4), one_each) is False  # 8 samples over 8 images
    assert pixel_cache(recipe(max_steps=4, batch_size=4), one_each) is None
    two_each = [Example(e.id, e.image, e.captions * 2) for e in one_each]
    assert pixel_cache(recipe(epochs=1), two_each) is None
    processor = build_processor()
    data = build_dataset(one_each, processor, "Describe this image.", max_target_length=32,
                         cache=pixel_cache(recipe(epochs=1), one_each))
    assert not data.images.cached
