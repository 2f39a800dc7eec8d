"""Caption examples -> model batches. Everything that can be done once is done once.

This is the fast path of the Qwen-style (grid) families (wizard/families.py: batching="grid");
every other family's processor builds its batches (wizard/train/batches.py), from the same Items
and tokenized captions. build_dataset and collator_for pick the path by the model's family.

    data = build_dataset(caption_set.train, processor, prompt, max_target_length=32)
    collator = CaptionCollator(processor, data.images)
    batch = collator([data[0], data[1]])     # input_ids, attention_mask, labels, pixel_values, ...

- The prompt is the same for every example: it is tokenized once, with a single image
  placeholder that the collator widens to the image's token count.
- Each caption of a train image is its own training example; all targets are tokenized in one
  batch call up front and truncated at train.max_target_length tokens.
- Images go through the processor once: for small datasets (pixel values under
  CACHE_LIMIT_BYTES) each image when its first batch needs it, kept for the later epochs (so
  training starts at once, and no later epoch decodes or resizes an image again); larger
  datasets, and runs that see each image about once (one epoch, one caption per image: nothing
  to reuse; 4.8 MB per 448 px image), process each batch's images on the fly.
- Labels are -100 everywhere except the caption tokens (and the end-of-turn token after them):
  the loss never covers the system prompt, the instruction, the image or the padding.
- Not cached: images are decoded and processed per batch, in DataLoader worker processes
  (loader_workers()), so the training loop does not wait for them. The collator then runs in a
  worker: it keeps no counters (the trainer counts tokens; build_dataset counts truncations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

IGNORE = -100
CACHE_LIMIT_BYTES = 1 << 30  # cache processed pixels up to 1 GiB (the demo set is ~40 MB)


@dataclass
class Item:
    """One training example: which image, and the tokenized caption to learn."""

    image: int  # index into ImageStore
    target: Any  # caption token ids + end of turn (a list of ints: 50k small tensors took seconds to make)
    seq: Any = None  # the whole input_ids row, once the image's token count is known
    n_prompt: int = 0  # tokens before the caption (masked out of the loss)
    store: Any = None  # the ImageStore that `image` indexes (train and eval sets each have their own)
    text: str | None = None  # the caption as text, for processors that take it (PaliGemma's suffix=)


class ImageStore:
    """Pixel values + grid of every image, processed once (cached) or per batch (large datasets)."""

    def __init__(self, examples: Sequence, image_processor, *, loader: Callable, cache: bool | None = None):
        self.examples = examples
        self.image_processor = image_processor
        self.loader = loader
        self._cache: list | None = None
        self.keys: list[str] | None = None  # image digests, set when vision features are cached (vision_cache.py)
        if cache is None:
            cache = self._estimate_bytes() <= CACHE_LIMIT_BYTES
        if cache:  # filled as batches ask (the same values as processing everything up front)
            self._cache = [None] * len(examples)

    @property
    def cached(self) -> bool:
        return self._cache is not None

    def _estimate_bytes(self) -> int:
        if not self.examples:
            return 0
        (pixels, _), = self._process([0])
        return pixels.numel() * pixels.element_size() * len(self.examples)

    def _process(self, indices) -> list[tuple[Any, Any]]:
        """[(pixel_values [patches, dim], grid_thw [1, 3])] for the given images, in one processor call."""
        images = [self.loader(self.examples[i]) for i in indices]
        out = self.image_processor(images=images, return_tensors="pt")
        grids = out["image_grid_thw"]
        sizes = grids.prod(dim=1).tolist()
        pixels = out["pixel_values"].split(sizes)
        return [(p.contiguous(), grids[k:k + 1]) for k, p in enumerate(pixels)]

    def get(self, indices: Sequence[int]) -> list[tuple[Any, Any]]:
        if self._cache is None:
            return self._process(indices)
        todo = list(dict.fromkeys(i for i in indices if self._cache[i] is None))
        for i, value in zip(todo, self._process(todo) if todo else []):
            self._cache[i] = value
        return [self._cache[i] for i in indices]


@dataclass
class Prompt:
    """The chat prompt around one image placeholder, as token ids."""

    before: Any  # LongTensor: tokens up to the image placeholder
    after: Any  # LongTensor: tokens after it, ending where the caption begins
    image_token_id: int
    merge: int  # spatial merge size: image tokens = t*h*w / merge**2


def tokenize_prompt(processor, prompt: str) -> Prompt:
    import torch

    from wizard.chat import prompt_text

    tok = processor.tokenizer
    image_token = getattr(processor, "image_token", "<|image_pad|>")
    image_token_id = tok.convert_tokens_to_ids(image_token)
    ids = tok(prompt_text(processor, prompt), add_special_tokens=False)["input_ids"]
    if ids.count(image_token_id) != 1:
        raise ValueError(f"the chat template should place exactly one {image_token} in the prompt, got "
                         f"{ids.count(image_token_id)}")
    cut = ids.index(image_token_id)
    merge = getattr(processor.image_processor, "merge_size", 2)
    return Prompt(torch.tensor(ids[:cut]), torch.tensor(ids[cut + 1:]), image_token_id, merge)


def tokenize_targets(processor, captions: list[str], max_length: int, cache_dir=None,
                     family=None) -> tuple[list, int]:
    """Caption + end-of-turn token ids, truncated at `max_length`; also how many were truncated.
    `cache_dir`: keep the ids there, keyed by the tokenizer file, the texts and `max_length` (a replay
    of 50k captions then loads them in milliseconds instead of tokenizing for seconds)."""
    import itertools

    from wizard.chat import end_token

    if not captions:
        return [], 0
    end = end_token(processor, family)  # the family's end-of-turn token (looked up once)
    texts = [c.strip() + end for c in captions]
    cache = _token_cache_file(processor, texts, max_length, cache_dir) if cache_dir else None
    if cache is not None and cache.is_file():
        import numpy as np

        try:
            with np.load(cache) as z:
                flat, lengths, cut = z["ids"].tolist(), z["lengths"].tolist(), int(z["cut"])
            ends = list(itertools.accumulate(lengths))
            return [flat[e - n:e] for e, n in zip(ends, lengths)], cut
        except (OSError, ValueError, KeyError):
            pass  # unreadable: tokenize again
    targets, cut = _tokenize(processor, texts, max_length)
    if cache is not None:
        _save_tokens(cache, targets, cut)
    return targets, cut


def _token_cache_file(processor, texts: list[str], max_length: int, cache_dir):
    import hashlib
    from pathlib import Path

    file = Path(getattr(processor.tokenizer, "name_or_path", "") or ".") / "tokenizer.json"
    if not file.is_file():
        return None
    h = hashlib.sha256(file.read_bytes())
    h.update(f"\x00{max_length}\x00".encode())
    h.update("\x1f".join(texts).encode("utf-8", "surrogatepass"))
    return Path(cache_dir) / f"{h.hexdigest()[:32]}.npz"


def _save_tokens(path, targets: list, cut: int) -> None:
    import contextlib
    import os

    import numpy as np

    ids = np.fromiter((i for t in targets for i in t), dtype=np.int64)
    with contextlib.suppress(OSError):  # a read-only cache: tokenize again next time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
        np.savez(tmp, ids=ids, lengths=np.array([len(t) for t in targets], dtype=np.int64), cut=cut)
        os.replace(tmp, path)


def _tokenize(processor, texts: list[str], max_length: int) -> tuple[list, int]:
    # through transformers, not the Rust tokenizer directly: tokenizer.json may switch padding on
    # (the demo's pads to the longest in the batch), and transformers sets it per call
    encoded = processor.tokenizer(texts, add_special_tokens=False)["input_ids"]
    cut = sum(len(ids) > max_length for ids in encoded)
    return [list(ids[:max_length]) for ids in encoded], cut


def _widen(item: Item, prompt: Prompt, grid) -> tuple[Any, int]:
    """The input_ids row of an item: prompt with the image placeholder widened to the image's tokens."""
    import torch

    n_image = int(grid.prod()) // (prompt.merge * prompt.merge)
    image = torch.full((n_image,), prompt.image_token_id, dtype=torch.long)
    n_prompt = len(prompt.before) + n_image + len(prompt.after)
    target = torch.tensor(item.target, dtype=torch.long)
    return torch.cat([prompt.before, image, prompt.after, target]), n_prompt


class CaptionDataset:
    """A map-style dataset of Items (len/getitem: what the Trainer's sampler and DataLoader need)."""

    def __init__(self, items: list[Item], images: ImageStore, prompt: Prompt, truncated: int = 0, family=None):
        self.items = items
        self.images = images
        self.prompt = prompt
        self.truncated = truncated
        self.family = family  # the model's row of wizard/families.py

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Item:
        return self.items[i]


def pixel_cache(recipe, examples: Sequence, world: int = 1) -> bool | None:
    """build_dataset's `cache`: False when each training image is seen less than twice on average
    (keeping its pixels would only hold memory), else None (cache when they fit CACHE_LIMIT_BYTES)."""
    from wizard.cache_vision import MIN_VISITS, expected_visits

    items = sum(len(ex.captions) for ex in examples)
    return False if expected_visits(recipe, items, len(examples), world) < MIN_VISITS else None


def build_dataset(examples: Sequence, processor, prompt: str, *, max_target_length: int,
                  loader: Callable | None = None, cache: bool | None = None, token_cache=None,
                  family=None) -> CaptionDataset:
    """One Item per (image, caption); images and captions are processed here, once.
    `token_cache`: a folder for the tokenized captions (see tokenize_targets). `family`: the model's
    row of wizard/families.py (default: by the processor's class); all but the grid (Qwen-style)
    families get batches built by their processor (wizard/train/batches.py)."""
    from wizard.families import for_processor

    if loader is None:
        from wizard.data import load_image as loader
    family = family or for_processor(processor)
    pairs = [(i, caption) for i, ex in enumerate(examples) for caption in ex.captions]
    targets, truncated = tokenize_targets(processor, [c for _, c in pairs], max_target_length, token_cache, family)
    if family.batching != "grid":
        return _processor_dataset(examples, processor, prompt, family, pairs, targets, truncated, loader)
    images = ImageStore(examples, processor.image_processor, loader=loader, cache=cache)
    items = [Item(i, t, store=images) for (i, _), t in zip(pairs, targets)]
    return CaptionDataset(items, images, tokenize_prompt(processor, prompt), truncated, family)


def _processor_dataset(examples, processor, prompt: str, family, pairs, targets, truncated: int,
                       loader: Callable):
    """The dataset of a processor-built family: the Items, the images decoded per batch, the prompt text."""
    from wizard.chat import prompt_text, text_kwargs
    from wizard.train.batches import ImageList, ProcessorPrompt

    images = ImageList(examples, loader)
    tok = processor.tokenizer
    items = []
    for (i, caption), target in zip(pairs, targets):
        item = Item(i, target, store=images)
        if family.prompt == "prefix_suffix":  # the processor appends the eos itself
            item.text = tok.decode(target[:-1]) if len(target) and target[-1] == tok.eos_token_id else caption
        items.append(item)
    text = prompt_text(processor, prompt, family)
    return CaptionDataset(items, images, ProcessorPrompt(text, text_kwargs(processor, text)), truncated, family)


def loader_workers(dataset: CaptionDataset) -> int:
    """DataLoader worker processes: none when every image is cached (batches are cheap slices), else
    one per spare core (at least one, at most 4) to decode and process images beside training."""
    if dataset.images.cached:
        return 0
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores - 1))


class TokenCounter:
    """Non-padding tokens trained on, counted by the trainer in the training process (a counter in the
    collator would count in DataLoader workers, out of sight)."""

    def __init__(self):
        self.tokens = 0

    def add(self, batch: dict) -> None:
        mask = batch.get("attention_mask") if hasattr(batch, "get") else None
        if mask is not None:
            self.tokens += int(mask.sum())


def collator_for(processor, dataset: CaptionDataset):
    """The collator of a dataset from build_dataset: CaptionCollator for grid families, else the
    processor-built batches (wizard/train/batches.py)."""
    family = getattr(dataset, "family", None)
    if family is not None and family.batching != "grid":
        from wizard.train.batches import ProcessorCollator

        return ProcessorCollator(processor, dataset)
    return CaptionCollator(processor, dataset)


class CaptionCollator:
    """Items -> one padded batch (right padding). Stateless, so it can run in DataLoader workers."""

    def __init__(self, processor, dataset: CaptionDataset):
        self.images = dataset.images
        self.prompt = dataset.prompt
        self.pad_id = processor.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = processor.tokenizer.eos_token_id

    def __call__(self, items: list[Item]) -> dict[str, Any]:
        import torch

        # One collator serves the train and the eval set: take the images from the items' own store.
        store = items[0].store or self.images
        vision = store.get([it.image for it in items])
        rows = [(it.seq, it.n_prompt) if it.seq is not None else _widen(it, self.prompt, grid)
                for it, (_, grid) in zip(items, vision)]
        longest = max(len(seq) for seq, _ in rows)
        input_ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), longest), IGNORE, dtype=torch.long)
        attention = torch.zeros((len(rows), longest), dtype=torch.long)
        for r, (seq, n_prompt) in enumerate(rows):
            input_ids[r, : len(seq)] = seq
            labels[r, n_prompt: len(seq)] = seq[n_prompt:]
            attention[r, : len(seq)] = 1
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "labels": labels,
            "mm_token_type_ids": (input_ids == self.prompt.image_token_id).long(),  # image tokens (M-RoPE)
            "pixel_values": torch.cat([px for px, _ in vision]),
            "image_grid_thw": torch.cat([g for _, g in vision]),
        }
        if store.keys is not None:  # the vision feature cache's keys (CaptionTrainer hands them over)
            batch["image_keys"] = [store.keys[it.image] for it in items]
        return batch


# ----------------------------------------------------------------------------- length-grouped order
class GroupedByLength:
    """A shuffled order in which each run of `batch_size` indices has rows of similar length
    (transformers' mega-batch grouping), so a batch pads its rows to little more than they hold.

    The order is a function of (seed, epoch) only: the Trainer calls set_epoch() before each epoch
    and a resumed run skips the batches it already did in exactly the same order.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def grouped_sampler(dataset, batch_size: int, seed: int) -> GroupedByLength | None:
    """A GroupedByLength over the rows' lengths when they vary by image size; None (plain shuffle)
    when every image has the same token count or the sizes are not known before the batch
    (datasets too large to process up front)."""
    items = getattr(dataset, "items", None)
    if not items or any(it.seq is None for it in items):
        return None
    prompts = {it.n_prompt for it in items}  # the prompt is shared: n_prompt varies with the image only
    if len(prompts) == 1:
        return None
    return GroupedByLength([len(it.seq) for it in items], batch_size, seed)
