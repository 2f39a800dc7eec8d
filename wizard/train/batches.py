"""Batches built by the family's own processor: every family but the Qwen-style grid ones.

    data = build_dataset(examples, processor, prompt, family=family, ...)   # wizard.train.collate
    batch = ProcessorCollator(processor, data)([data[0], data[1]])

The Qwen fast path (wizard/train/collate.py) tokenizes the prompt once and widens one placeholder;
that needs to know how the processor expands an image. Other processors tile, pad, add row and
column tokens, cross-attention masks, token types... so here the processor itself builds the
prompt part of every batch, and what it returns goes to the model unchanged:

- chat and task prompts: processor(text=prompts, images=...), with padding_side="right" on every
  call (InternVL's processor pads on the left unless told). Each row's prompt is followed by its
  caption's token ids (tokenized once, up front, ending with the family's end token); outputs
  aligned with the tokens (token_type_ids, mm_token_type_ids, cross_attention_mask: [batch, tokens,
  ...]) are continued over the caption with the value at the prompt's last position (a text token
  that sees the image); every other output (pixel_values, image_grid_thw, image_sizes,
  pixel_attention_mask, aspect_ratio_ids/mask) is passed as the processor made it.
- encoder-decoder (Florence-2): the processor's output is the encoder's input, unchanged; the labels
  are the caption alone, and the decoder reads them shifted right behind its start token.
- prefix_suffix (PaliGemma): the processor's `suffix=` appends the caption and its eos and marks
  them with token_type_ids 1; the labels are those positions.

Labels are -100 everywhere but the caption and its end token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

IGNORE = -100


class ImageList:
    """The images of a split, decoded when a batch needs them (the processor does the rest per batch)."""

    cached = False  # loader_workers(): decode in DataLoader workers
    keys = None  # no vision feature cache on this path

    def __init__(self, examples: Sequence, loader: Callable):
        self.examples, self.loader = examples, loader

    def get(self, indices: Sequence[int]) -> list:
        return [self.loader(self.examples[i]).convert("RGB") for i in indices]


@dataclass
class ProcessorPrompt:
    text: str  # the prompt as the processor's text (wizard.chat.prompt_text)
    call: dict  # extra processor arguments (no second BOS, ...)


class ProcessorCollator:
    """Items -> one right-padded batch through the processor. Stateless: it can run in DataLoader workers."""

    def __init__(self, processor, dataset):
        self.processor = processor
        self.images = dataset.images
        self.prompt = dataset.prompt
        self.family = dataset.family
        tok = processor.tokenizer
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.decoder_start = tok.convert_tokens_to_ids(self.family.decoder_start) if self.family.decoder_start else None

    def __call__(self, items: list) -> dict[str, Any]:
        store = items[0].store or self.images
        images = [[im] for im in store.get([it.image for it in items])]  # one image per row
        n = len(items)
        call = dict(self.prompt.call, return_tensors="pt", padding=True, padding_side="right")
        if self.family.prompt == "prefix_suffix":
            out = self.processor(text=[self.prompt.text] * n, images=images, suffix=[it.text for it in items], **call)
            out["labels"] = out["input_ids"].masked_fill((out["token_type_ids"] == 0) | (out["attention_mask"] == 0),
                                                         IGNORE)
            return dict(out)
        out = dict(self.processor(text=[self.prompt.text] * n, images=images, **call))
        if self.family.encoder_decoder:
            return {**out, **self._decoder(items)}
        return self._continue(out, items)

    def _decoder(self, items) -> dict:
        import torch

        longest = max(len(it.target) for it in items)
        labels = torch.full((len(items), longest), IGNORE, dtype=torch.long)
        inputs = torch.full((len(items), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        for r, it in enumerate(items):
            t = torch.tensor(it.target, dtype=torch.long)
            labels[r, : len(t)] = t
            inputs[r, 0] = self.decoder_start
            inputs[r, 1: len(t)] = t[:-1]
            mask[r, : len(t)] = 1
        return {"labels": labels, "decoder_input_ids": inputs, "decoder_attention_mask": mask}

    def _continue(self, out: dict, items) -> dict:
        """Append each row's caption ids after its prompt; continue the token-aligned outputs over them."""
        import torch

        ids, attention = out["input_ids"], out["attention_mask"]
        n_prompt = attention.sum(dim=1).tolist()  # right-padded: the first n tokens are the prompt
        lengths = [p + len(it.target) for p, it in zip(n_prompt, items)]
        longest = max(lengths)
        aligned = [k for k, v in out.items() if torch.is_tensor(v) and v.dim() >= 2 and v.shape[:2] == ids.shape
                   and k not in ("input_ids", "attention_mask")]
        batch = {k: v for k, v in out.items() if k not in aligned}
        new_ids = torch.full((len(items), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), longest), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=attention.dtype)
        grown = {k: out[k].new_zeros((len(items), longest, *out[k].shape[2:])) for k in aligned}
        for r, (p, it) in enumerate(zip(n_prompt, items)):
            t = torch.tensor(it.target, dtype=torch.long)
            new_ids[r, :p] = ids[r, :p]
            new_ids[r, p: p + len(t)] = t
            labels[r, p: p + len(t)] = t
            mask[r, : p + len(t)] = 1
            for k in aligned:
                grown[k][r, :p] = out[k][r, :p]
                grown[k][r, p: p + len(t)] = out[k][r, p - 1]
        batch.update(grown, input_ids=new_ids, attention_mask=mask, labels=labels)
        return batch
