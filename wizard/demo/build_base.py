"""Train the demo's English base captioner from scratch and save it to wizard/assets/demo-base/.

    python -m wizard.demo.build_base                      # the shipped base (about 8 min on 2 cores)
    python -m wizard.demo.build_base --out /tmp/base --steps 300    # a quick look

Full fine-tune of a randomly initialised tiny Qwen2-VL (wizard.demo.model) on English captions of
synthetic shapes (wizard.demo.shapes), plain torch loop, seeded, deterministic algorithms, 2 threads.
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
STEPS = 3000
BATCH = 32
LR = 2e-3
WARMUP = 100
WEIGHT_DECAY = 0.0       # no decay: the untrained (Chinese) rows stay exactly as initialised
N_TRAIN = 8192
N_HELDOUT = 32
SEED = 0
THREADS = 2


def encode(processor, samples, lang: str = "en", prompt: str | None = None, with_answer: bool = True):
    """Processor batch for `samples`; with_answer adds the caption + <|im_end|> and `labels` on it only."""
    import torch

    from wizard.demo.model import PROMPTS

    prompt = prompt or PROMPTS[lang]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    head = processor.apply_chat_template(messages, add_generation_prompt=True)
    texts = [head + (s.caption(lang) + "<|im_end|>" if with_answer else "") for s in samples]
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


def caption(model, processor, samples, lang: str = "en", prompt: str | None = None, max_new_tokens: int = 20):
    """Greedy captions for `samples` (a list of ShapeSample)."""
    import torch

    batch = encode(processor, samples, lang, prompt, with_answer=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    return [t.strip() for t in processor.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)]


def accuracy(model, processor, samples, lang: str = "en", prompt: str | None = None, batch: int = 16):
    """(exact-match fraction, per-part hits, predictions): parts are shape, colour, background."""
    from wizard.demo.shapes import COLORS, SHAPES

    preds = []
    for i in range(0, len(samples), batch):
        preds += caption(model, processor, samples[i:i + batch], lang, prompt)
    exact = sum(p == s.caption(lang) for p, s in zip(preds, samples))
    parts = {"shape": 0, "color": 0, "background": 0}
    for p, s in zip(preds, samples):
        ref = s.caption(lang)
        # the caption names (background, colour+shape) in fixed slots, so compare the slots
        if lang == "en":
            words, ref_w = p.split(), ref.split()
            hit = dict(shape=words[2:3] == ref_w[2:3], color=words[1:2] == ref_w[1:2], background=words[5:6] == ref_w[5:6])
        else:
            bg, fg = (p.split("背景上的") + [""])[:2]
            hit = dict(shape=fg.endswith(SHAPES[s.shape]), color=fg.startswith(COLORS[s.color][1]),
                       background=bg == COLORS[s.background][1])
        for k in parts:
            parts[k] += bool(hit[k])
    return exact / len(samples), parts, preds


def train(out: Path, steps: int = STEPS, batch: int = BATCH, lr: float = LR, n_train: int = N_TRAIN,
          seed: int = SEED, log_every: int = 100, eval_every: int = 0) -> float:
    import torch

    from wizard.demo.model import build_model, build_processor
    from wizard.demo.shapes import make_shapes

    torch.set_num_threads(THREADS)
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
    model.train()
    for step in range(1, steps + 1):
        if pos + batch > n_train:
            order, pos = torch.randperm(n_train, generator=gen).tolist(), 0
        b = encode(processor, [train_set[i] for i in order[pos:pos + batch]], "en")
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
            print(f"  held-out exact {acc:.3f} {parts}", flush=True)
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

    ap = argparse.ArgumentParser(prog="python -m wizard.demo.build_base", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=demo_base_path())
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--n-train", type=int, default=N_TRAIN)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--eval-every", type=int, default=0, help="also measure held-out accuracy every N steps")
    a = ap.parse_args(argv)
    train(a.out, steps=a.steps, batch=a.batch, lr=a.lr, n_train=a.n_train, seed=a.seed, eval_every=a.eval_every)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
