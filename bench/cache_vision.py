"""Time per epoch with tuning.cache_vision off vs memory, side by side in one run (CPU).

    python bench/cache_vision.py                       # demo model and real-shape model, 3 epochs
    python bench/cache_vision.py --models demo --images 64 --epochs 3
    python bench/cache_vision.py --models realshape --images 8 --layers 4 --vision-depth 4

Both settings train the same LoRA recipe (fp32, batch 4, one caption per image, gradient
checkpointing on) with caption-wizard's training path: the model plan and adapters
(wizard.train.load), the tokenize-once dataset and pixel cache, the CaptionTrainer with its
callbacks as wizard.train.backend builds them, and setup_vision_cache as the backend calls it.
Each setting trains in its own subprocess, in alternating order over --rounds, so machine load
hits both alike. Epoch 1 computes every feature either way; from epoch 2 on the cache looks them
up, so "later epochs" is what the cache saves per epoch. The losses of both settings are compared
too (they must be identical in fp32).

Models: "demo" is the tiny demo model (wizard/demo/model.py) on the demo's small images;
"realshape" is wizard/demo/realshape.py (Qwen2-VL-2B's widths, random weights, 448 px images =
1024 patches, 256 tokens) cut to --layers language layers and --vision-depth vision blocks. The
real Qwen2-VL-2B has 28 and 32: the default 4 + 4 keeps roughly their ratio, which decides how
much of a step the vision tower is.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def recipe_for(model: Path, mode: str, epochs: int, realshape: bool):
    from wizard.recipe import Recipe

    data = {"dataset": "bench", "eval_fraction": 0.0}
    if realshape:
        data.update(max_pixels=448 * 448, min_pixels=3136)
    return Recipe.model_validate({
        "name": "cache-vision", "model": {"id": str(model), "source": "local"}, "data": data,
        "tuning": {"strategy": "lora", "cache_vision": mode,
                   "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "modules_to_save": []}},
        "train": {"batch_size": 4, "epochs": epochs, "precision": "fp32", "gradient_checkpointing": True,
                  "max_target_length": 32, "save_steps": 10 ** 6, "logging_steps": 1, "warmup_ratio": 0.0},
        "launch": {"devices": "cpu"},
    })


def examples_for(which: str, n: int):
    from wizard.data import Example

    if which == "realshape":
        from wizard.demo.realshape import realshape_examples

        return realshape_examples(n)
    from wizard.demo.shapes import make_shapes

    return [Example(f"s{i}", s.image, s.captions("en")[:1]) for i, s in enumerate(make_shapes(n, seed=0))]


# ----------------------------------------------------------------------------- one setting (child)
def child(args) -> None:
    import torch
    from transformers import TrainerCallback, set_seed

    from wizard.chat import resolve_prompt
    from wizard.data.examples import image_digest
    from wizard.rundir.events import RunRecorder
    from wizard.runner import create_run
    from wizard.train import backend
    from wizard.train.callbacks import StopFlag
    from wizard.train.collate import CaptionCollator, build_dataset
    from wizard.train.load import load_model
    from wizard.train.vision_cache import setup_vision_cache

    torch.set_num_threads(args.threads) if args.threads else None
    recipe = recipe_for(Path(args.model), args.mode, args.epochs, args.which == "realshape")

    class Clock(TrainerCallback):
        def __init__(self):
            self.epochs, self.losses = [], []

        def on_epoch_begin(self, a, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, a, state, control, **kw):
            self.epochs.append(time.perf_counter() - self.t0)

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    class Resolved:
        path, files, revision = Path(recipe.model.id), {}, None

    run_dir = create_run(recipe, Resolved(), runs_dir=Path(tempfile.mkdtemp(prefix="cw-cv-")))
    set_seed(recipe.train.seed)
    model, processor = load_model(recipe, Path(recipe.model.id), for_training=True, device="cpu")
    examples = examples_for(args.which, args.images)
    data = build_dataset(examples, processor, resolve_prompt(recipe), max_target_length=recipe.train.max_target_length)
    bundle = backend.Data(data, None, CaptionCollator(processor, data), "bench", [])
    captions = argparse.Namespace(digests={e.id: image_digest(e.image) for e in examples},
                                  sizes={e.id: e.image.size for e in examples})
    cache, line = setup_vision_cache(recipe, {}, model, processor, captions, bundle, "cpu")
    trainer, _ = backend._build_trainer(run_dir, recipe, model, processor, bundle, "cpu", RunRecorder(run_dir),
                                        StopFlag(), None)
    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    features = sum(t.numel() * t.element_size() for t in cache._memory.values()) if cache else 0
    print(json.dumps({"epochs": clock.epochs, "losses": clock.losses, "line": line, "cache_bytes": features}),
          flush=True)


# ----------------------------------------------------------------------------- parent
def ensure_model(which: str, args) -> Path:
    if which == "demo":
        folder = Path(tempfile.gettempdir()) / "cw-bench-demo-model"
        code = ("import sys; from wizard.demo.model import build_model, build_processor; "
                "build_model(0).save_pretrained(sys.argv[1]); build_processor().save_pretrained(sys.argv[1])")
    else:
        folder = Path(tempfile.gettempdir()) / f"cw-realshape-l{args.layers}-v{args.vision_depth}"
        code = (f"import sys; from wizard.demo.realshape import build_realshape; "
                f"build_realshape(sys.argv[1], layers={args.layers}, vision_depth={args.vision_depth})")
    if not (folder / "config.json").is_file():
        print(f"building the {which} model in {folder} ...", flush=True)
        subprocess.run([sys.executable, "-c", code, str(folder)], check=True, env=child_env())
    return folder


def child_env() -> dict:
    return dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT), TQDM_DISABLE="1",
                HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def run_child(which: str, model: Path, mode: str, images: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--model", str(model), "--mode", mode,
           "--images", str(images), "--epochs", str(args.epochs)] + (
        ["--threads", str(args.threads)] if args.threads else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    if proc.returncode != 0:
        raise SystemExit(f"{which}/{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["demo", "realshape"], choices=["demo", "realshape"])
    p.add_argument("--images", type=int, default=None, help="training images (default: demo 64, realshape 8)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vision-depth", type=int, default=4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--child", choices=["demo", "realshape"])
    p.add_argument("--model")
    p.add_argument("--mode", default="off")
    args = p.parse_args()
    if args.child:
        args.which = args.child
        return child(args)
    print(f"tuning.cache_vision off vs memory, {args.epochs} epochs, fp32 LoRA, batch 4, CPU "
          f"({os.cpu_count()} cores), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    for which in args.models:
        model = ensure_model(which, args)
        images = args.images or (64 if which == "demo" else 8)
        runs: dict[str, list] = {"off": [], "memory": []}
        for r in range(args.rounds):
            for mode in (("off", "memory") if r % 2 == 0 else ("memory", "off")):
                runs[mode].append(run_child(which, model, mode, images, args))
        first = {m: statistics.median(x["epochs"][0] for x in v) for m, v in runs.items()}
        later = {m: statistics.median(statistics.mean(x["epochs"][1:]) for x in v) for m, v in runs.items()}
        same = all(a["losses"] == b["losses"] for a, b in zip(runs["off"], runs["memory"]))
        name = which if which == "demo" else f"realshape {args.layers}+{args.vision_depth} layers"
        print(f"\n{name}: {images} images, {args.rounds} round(s)")
        print(f"  {runs['memory'][0]['line']}")
        print(f"  {'':8} {'epoch 1':>9} {'later epochs':>13}")
        for mode in ("off", "memory"):
            print(f"  {mode:8} {first[mode]:8.2f}s {later[mode]:12.2f}s")
        print(f"  later epochs: memory/off = {later['memory'] / later['off']:.2f} "
              f"(saves {later['off'] - later['memory']:.2f}s per epoch, "
              f"{1 - later['memory'] / later['off']:.0%}); cache {runs['memory'][0]['cache_bytes'] / 2**20:.1f} MiB; "
              f"losses identical: {same}", flush=True)


if __name__ == "__main__":
    main()
