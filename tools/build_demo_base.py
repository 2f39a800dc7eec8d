"""Train the demo's English base captioner from scratch and save it to wizard/assets/demo-base/.

    python -m tools.build_demo_base                      # the shipped base (about 10 min on a shared 2-core machine)
    python -m tools.build_demo_base --out /tmp/base --steps 300    # a quick look

Full fine-tune of a randomly initialised tiny Qwen2-VL (wizard.demo.model) on English captions of
synthetic shapes (wizard.demo.shapes), plain torch loop, seeded, deterministic algorithms, one thread.
Only English captions are trained: the Chinese tokens' embeddings and lm_head rows keep their
random initialisation, so adapting the base to Chinese (recipes/demo-shapes.yaml) is a real task.
At the end it greedy-captions held-out shapes and prints the exact-match accuracy.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

# Defaults in one place. Data: fresh random shapes drawn from a fixed pool (seed 0); held-out: seed 1.
STEPS = 2400
BATCH = 16
LR = 2e-3
WARMUP = 100
WEIGHT_DECAY = 0.0       # no decay: the untrained (Chinese) rows stay exactly as initialised
N_TRAIN = 8192
N_HELDOUT = 32
SEED = 0
THREADS = 1           # one thread: on a shared 2-core machine 2 threads ran 6x slower (OpenMP waits)


def encode(processor, samples, lang: str = "en", prompt: str | None = None, with_answer: bool = True,
           answers: list[str] | None = None):
    """Processor batch for `samples`; with_answer adds the caption (`answers`, default each sample's
    main caption) + <|im_end|>, with `labels` on those tokens only."""
    import torch

    from wizard.demo.model import PROMPTS

    prompt = prompt or PROMPTS[lang]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    head = processor.apply_chat_template(messages, add_generation_prompt=True)
    answers = answers or [s.caption(lang) for s in samples]
    texts = [head + (a + "<|im_end|>" if with_answer else "") for a in answers]
    tok = processor.tokenizer
    side, tok.padding_side = tok.padding_side, ("right" if with_answer else "left")
    try:
        batch = processor(text=texts, images=[s.image for s in samples], return_tensors="pt", padding=True)
    finally:
        tok.padding_side = side
    if with_answer:
        # Everything up to and including "<|im_start|>assistant\n" is prompt: the same length for every
        # sample (one image size, one prompt), so mask by the prompt's token count.
        n_prompt = len(processor(text=[head], images=[samples[0].image])["input_ids"][0])
        labels = batch["input_ids"].clone()
        labels[:, :n_prompt] = -100
        labels[batch["attention_mask"] == 0] = -100
        batch["labels"] = labels
    return batch


class FastBatches:
    """The same batches as `encode(processor, samples, lang)`, built with a few tensor ops.

    The processor spends as long on 32 small images as the model's forward + backward pass. Demo
    images all have one size (no resize), so the image processor reduces to rescale, normalize and
    the Qwen2-VL patch layout, and the prompt tokens are the same for every sample. `check` compares
    with the real processor and refuses to run if anything differs.
    """

    def __init__(self, processor, lang: str = "en"):
        import torch

        self.processor, self.lang = processor, lang
        ip = processor.image_processor
        self.mean = torch.tensor(ip.image_mean).view(3, 1, 1)
        self.std = torch.tensor(ip.image_std).view(3, 1, 1)
        self.scale, self.ps, self.ms, self.tps = ip.rescale_factor, ip.patch_size, ip.merge_size, ip.temporal_patch_size
        self.head = None
        self.answers: dict[str, list[int]] = {}

    def pixels(self, image):
        import numpy as np
        import torch

        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float()
        x = ((x * self.scale - self.mean) / self.std).unsqueeze(0).repeat(self.tps, 1, 1, 1)  # (T, C, H, W)
        gh, gw, ps, ms = x.shape[2] // self.ps, x.shape[3] // self.ps, self.ps, self.ms
        x = x.reshape(1, self.tps, 3, gh // ms, ms, ps, gw // ms, ms, ps).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gh * gw, 3 * self.tps * ps * ps), (1, gh, gw)

    def __call__(self, samples):
        import torch

        if self.head is None:
            ref = encode(self.processor, samples[:1], self.lang)
            n_prompt = int((ref["labels"][0] == -100).sum())
            self.head = ref["input_ids"][0, :n_prompt].tolist()
            self.image_id = self.processor.image_token_id
        rows, pix, grids = [], [], []
        for s in samples:
            text = s.caption(self.lang) + "<|im_end|>"
            if text not in self.answers:
                self.answers[text] = self.processor.tokenizer(text, add_special_tokens=False)["input_ids"]
            rows.append(self.answers[text])
            p, g = self.pixels(s.image)
            pix.append(p)
            grids.append(g)
        width = max(len(r) for r in rows)
        n = len(self.head)
        pad = self.processor.tokenizer.pad_token_id
        ids = torch.full((len(samples), n + width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for i, r in enumerate(rows):
            ids[i, :n + len(r)] = torch.tensor(self.head + r)
            mask[i, :n + len(r)] = 1
            labels[i, n:n + len(r)] = torch.tensor(r)
        return {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": (ids == self.image_id).long(),
                "pixel_values": torch.cat(pix), "image_grid_thw": torch.tensor(grids), "labels": labels}

    def check(self, samples) -> None:
        import torch

        fast, ref = self(samples), encode(self.processor, samples, self.lang)
        for key in ref:
            a, b = fast[key], ref[key]
            same = a.shape == b.shape and (torch.allclose(a, b, atol=1e-5) if a.is_floating_point() else torch.equal(a, b))
            if not same:
                raise RuntimeError(f"fast batches differ from the processor's in {key!r}")


def caption(model, processor, samples, lang: str = "en", prompt: str | None = None, max_new_tokens: int = 20):
    """Greedy captions for `samples` (a list of ShapeSample)."""
    import torch

    batch = encode(processor, samples, lang, prompt, with_answer=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    return [t.strip() for t in processor.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)]


def accuracy(model, processor, samples, lang: str = "en", prompt: str | None = None, batch: int = 16):
    """(exact-match fraction, {"color"|"shape"|"background": hits}, predictions), greedy decoding.
    Exact: the caption is one of the sample's reference phrasings, word for word.
    A part counts when the caption reads as one of the set's phrasings and names it rightly."""
    from wizard.demo.shapes import parse_caption

    preds = []
    for i in range(0, len(samples), batch):
        preds += caption(model, processor, samples[i:i + batch], lang, prompt)
    exact = sum(p in s.captions(lang) for p, s in zip(preds, samples))  # any reference phrasing
    parts = {"color": 0, "shape": 0, "background": 0}
    for p, s in zip(preds, samples):
        got = parse_caption(p, lang) or (None, None, None)
        for key, value in zip(("color", "shape", "background"), got):
            parts[key] += value == getattr(s, key)
    return exact / len(samples), parts, preds


def train(out: Path, steps: int = STEPS, batch: int = BATCH, lr: float = LR, n_train: int = N_TRAIN,
          seed: int = SEED, log_every: int = 100, eval_every: int = 0, threads: int = THREADS) -> float:
    import torch

    from wizard.demo.model import build_model, build_processor
    from wizard.demo.shapes import make_shapes

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    start = time.time()

    processor = build_processor()
    model = build_model(seed=seed, tokenizer=processor.tokenizer)
    train_set = make_shapes(n_train, seed=seed)
    heldout = make_shapes(N_HELDOUT, seed=seed + 1)
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters; {n_train} training shapes")

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n_train, generator=gen).tolist()
    pos, running = 0, None
    batches = FastBatches(processor, "en")
    batches.check(train_set[:batch])
    model.train()
    for step in range(1, steps + 1):
        if pos + batch > n_train:
            order, pos = torch.randperm(n_train, generator=gen).tolist(), 0
        b = batches([train_set[i] for i in order[pos:pos + batch]])
        pos += batch
        loss = model(**b).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        if step % log_every == 0 or step == steps:
            print(f"step {step}/{steps} loss {running:.4f} lr {sched.get_last_lr()[0]:.2e} {time.time() - start:.0f}s",
                  flush=True)
        if eval_every and step % eval_every == 0 and step != steps:
            model.eval()
            acc, parts, _ = accuracy(model, processor, heldout)
            seen, _, _ = accuracy(model, processor, train_set[:N_HELDOUT])
            print(f"  held-out exact {acc:.3f} {parts}; training shapes {seen:.3f}", flush=True)
            model.train()

    model.eval()
    acc, parts, preds = accuracy(model, processor, heldout)
    for p, s in list(zip(preds, heldout))[:8]:
        print(f"  {'ok ' if p == s.caption_en else 'BAD'} {p!r}  (want {s.caption_en!r})")
    print(f"held-out English exact match: {acc:.3f} ({round(acc * N_HELDOUT)}/{N_HELDOUT}) parts {parts}")

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    print(f"saved to {out} in {time.time() - start:.0f}s")
    return acc


def main(argv=None) -> int:
    from wizard.demo.model import demo_base_path

    ap = argparse.ArgumentParser(prog="python -m tools.build_demo_base", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=demo_base_path())
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--n-train", type=int, default=N_TRAIN)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--eval-every", type=int, default=0, help="also measure held-out accuracy every N steps")
    a = ap.parse_args(argv)
    train(a.out, steps=a.steps, batch=a.batch, lr=a.lr, n_train=a.n_train, seed=a.seed, eval_every=a.eval_every,
          threads=a.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
