"""Experiment: how fast does LoRA adapt the English demo base to Chinese captions on a CPU?

    python -m tools.check_adapt                                  # the settings recipes/demo-shapes.yaml uses
    python -m tools.check_adapt --rank 8 --targets q_proj,v_proj --steps 200   # try others

Plain torch + peft (no Trainer): load wizard/assets/demo-base, wrap the language model's linear layers
with LoRA, train on Chinese captions of synthetic shapes with the prompt 用中文描述这张图片。, then
greedy-caption held-out shapes and print the wall time, the loss curve and the accuracy (exact caption,
and shape / colour / background separately). Used to choose the demo recipe's settings; not a test.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

# The winning settings, as in recipes/demo-shapes.yaml. Data like the recipe's: 512 shapes of seed 2,
# 10% held out -> 461 training images, each caption phrasing a separate example (922 examples).
RANK = 16
ALPHA = 32
TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
# The base never produced a Chinese token: their lm_head rows were pushed down (first loss ~17) and
# their embeddings are random. LoRA alone left the loss at 5 (captions "色色色..."); training
# these two small matrices (424 x 128 each) fully fixes it.
MODULES_TO_SAVE = "lm_head,embed_tokens"
LR = 4e-3
BATCH = 16
EPOCHS = 5
PHRASINGS = 2
N_TRAIN = 461
WARMUP_RATIO = 0.05
N_HELDOUT = 64


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.check_adapt", description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, default=None, help="default: the shipped demo base")
    ap.add_argument("--rank", type=int, default=RANK)
    ap.add_argument("--alpha", type=float, default=ALPHA)
    ap.add_argument("--targets", default=TARGETS, help="comma-separated module names")
    ap.add_argument("--modules-to-save", default=MODULES_TO_SAVE, help="comma-separated, e.g. lm_head")
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--epochs", type=float, default=EPOCHS)
    ap.add_argument("--steps", type=int, default=None, help="overrides --epochs")
    ap.add_argument("--phrasings", type=int, default=PHRASINGS, choices=(1, 2),
                    help="train on the main caption only (1) or on every phrasing (2, like the recipe)")
    ap.add_argument("--n-train", type=int, default=N_TRAIN)
    ap.add_argument("--seed", type=int, default=2, help="picture seed (the recipe's data uses 2)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--heldout", type=int, default=N_HELDOUT, help="held-out shapes to caption")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    a = ap.parse_args(argv)

    t0 = time.time()
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from tools.build_demo_base import accuracy, encode
    from wizard.demo.model import demo_base_path
    from wizard.demo.shapes import make_shapes

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    base = a.base or demo_base_path()
    processor = AutoProcessor.from_pretrained(base)
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    # (image, caption) examples: every phrasing of every picture, like wizard.data does
    train_set = [(s, c) for s in make_shapes(a.n_train, seed=a.seed) for c in s.captions("zh")[:a.phrasings]]
    n_examples = len(train_set)
    steps = a.steps or math.ceil(a.epochs * n_examples / a.batch)
    heldout = make_shapes(a.heldout, seed=12345)

    model.eval()
    acc0, parts0, preds0 = accuracy(model, processor, heldout[:8], "zh")
    print(f"base on Chinese prompt: exact {acc0:.2f} {parts0} e.g. {preds0[0]!r}")
    t_loaded = time.time()

    targets = [t for t in a.targets.split(",") if t]
    # the language model's layers only (the vision tower is frozen, like the recipe's freeze_vision)
    pattern = rf".*language_model\..*\.({'|'.join(t for t in targets if t != 'lm_head')})"
    if "lm_head" in targets:
        pattern = rf"(?:{pattern}|lm_head)"
    config = LoraConfig(r=a.rank, lora_alpha=a.alpha, lora_dropout=0.0, target_modules=pattern,
                        modules_to_save=[m for m in a.modules_to_save.split(",") if m] or None)
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{n_examples} examples, {steps} steps of {a.batch}; trainable {trainable:,} of {sum(p.numel() for p in model.parameters()):,}")

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.0)
    warm = max(1, int(WARMUP_RATIO * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    gen = torch.Generator().manual_seed(a.seed)
    order, pos, losses = torch.randperm(n_examples, generator=gen).tolist(), 0, []
    model.train()
    t_train = time.time()
    for step in range(1, steps + 1):
        if pos + a.batch > n_examples:
            order, pos = torch.randperm(n_examples, generator=gen).tolist(), 0
        chosen = [train_set[i] for i in order[pos:pos + a.batch]]
        b = encode(processor, [s for s, _ in chosen], "zh", answers=[c for _, c in chosen])
        pos += a.batch
        loss = model(**b).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % a.log_every == 0 or step == 1:
            print(f"step {step} loss {losses[-1]:.4f} {time.time() - t_train:.0f}s", flush=True)
    t_done = time.time()

    model.eval()
    acc, parts, preds = accuracy(model, processor, heldout, "zh")
    for p, s in list(zip(preds, heldout))[:6]:
        print(f"  {'ok ' if p in s.captions('zh') else 'BAD'} {p!r}  (want {s.caption_zh!r})")
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"loss {first:.3f} -> {last:.3f} ({last / first:.0%}); train {t_done - t_train:.0f}s "
          f"({steps * a.batch / (t_done - t_train):.0f} samples/s), load + base check {t_loaded - t0:.0f}s, total {time.time() - t0:.0f}s")
    print(f"held-out Chinese exact {acc:.3f} ({round(acc * a.heldout)}/{a.heldout}) parts {parts} (of {a.heldout})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
