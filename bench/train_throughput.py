"""Training throughput of caption-wizard vs a bare torch loop, on the demo model, in one run.

    python bench/train_throughput.py                  # ratio + whole-process time + peak RSS
    python bench/train_throughput.py --steps 40 --rounds 3 --no-process

Same model (the demo base, or an untrained demo model when the base is not built), same LoRA,
same data, same batches, same threads:

  bare     for batch in batches: model(**batch).loss.backward(); AdamW step; zero_grad
           over batches built once beforehand (the compute floor: no data work at all)
  project  CaptionTrainer + EventsCallback exactly as `caption-wizard run` sets them up
           (tokenize-once dataset, collator, grad clipping, scheduler, events, state.json)

Each is timed from the end of step WARMUP to the end of the last step; rounds alternate
bare/project so machine load hits both alike, and the medians are compared. Then the whole
`caption-wizard run` (start-up, data, training, adapter, dashboard in plain mode) is timed as
a user would see it, with the peak RSS of the training process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `caption-wizard run` starts training (wizard.runner)

WARMUP = 5


def demo_recipe(base: Path | None, overrides: list[str]):
    from wizard.recipe import apply_overrides, load_recipe

    recipe = load_recipe(ROOT / "recipes" / "demo-shapes.yaml")
    if base is not None:  # the shipped base is not there: an untrained demo model in a temp folder
        overrides = [f"model.id={base}", "model.source=local", *overrides]
    return apply_overrides(recipe, overrides)


def model_folder(tmp: Path) -> Path | None:
    from wizard.demo.model import build_model, build_processor, demo_base_path

    if (demo_base_path() / "config.json").is_file():
        return None
    path = tmp / "demo-model"
    build_model(0).save_pretrained(path)
    build_processor().save_pretrained(path)
    return path


def load(recipe, model_path):
    from wizard.train.load import load_model

    return load_model(recipe, model_path, for_training=True, device="cpu")


def dataset(recipe, processor):
    from wizard.chat import resolve_prompt
    from wizard.data import load_caption_set
    from wizard.train.collate import CaptionCollator, build_dataset

    captions = load_caption_set(recipe.data, seed=recipe.train.seed)
    data = build_dataset(captions.train, processor, resolve_prompt(recipe),
                         max_target_length=recipe.train.max_target_length)
    return data, CaptionCollator(processor, data)


def bare_loop(recipe, model_path, steps: int) -> float:
    """(samples per wall second, per CPU second) of forward + backward + AdamW over pre-built batches."""
    import torch

    torch.manual_seed(recipe.train.seed)
    model, processor = load(recipe, model_path)
    data, collator = dataset(recipe, processor)
    bs = recipe.train.batch_size
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).tolist()
    batches = [collator([data[order[(s * bs + k) % len(data)]] for k in range(bs)]) for s in range(steps)]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.train.learning_rate, weight_decay=recipe.train.weight_decay)
    model.train()
    for i, batch in enumerate(batches):
        if i == WARMUP:
            t0, c0 = time.perf_counter(), time.process_time()
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    n = (steps - WARMUP) * bs
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def project_loop(recipe, model_path, steps: int, tmp: Path) -> float:
    """(samples per wall second, per CPU second) of the project's Trainer set-up (wizard.train.backend)."""
    import torch
    from transformers import TrainerCallback

    from wizard.runner import create_run
    from wizard.train import backend
    from wizard.rundir.events import RunRecorder
    from wizard.train.callbacks import StopFlag

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == WARMUP:
                self.t0, self.c0 = time.perf_counter(), time.process_time()
            self.t1, self.c1 = time.perf_counter(), time.process_time()

    torch.manual_seed(recipe.train.seed)
    recipe = recipe.model_copy(deep=True)
    recipe.train.max_steps, recipe.train.save_steps, recipe.data.eval_fraction = steps, 10 ** 6, 0.0

    class Resolved:
        path, files, revision = model_path, {}, None

    run_dir = create_run(recipe, Resolved(), runs_dir=tmp / "bench-runs")
    model, processor = load(recipe, model_path)
    data, collator = dataset(recipe, processor)
    data = backend.Data(data, None, collator, "bench", [])
    trainer, _ = backend._build_trainer(run_dir, recipe, model, processor, data, "cpu", RunRecorder(run_dir),
                                        StopFlag(), None)
    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    n = (steps - WARMUP) * recipe.train.batch_size
    return n / (clock.t1 - clock.t0), n / (clock.c1 - clock.c0)


def whole_process(model_path, overrides: list[str], tmp: Path) -> dict:
    """`caption-wizard run recipes/demo-shapes.yaml --plain` as a user runs it: wall time, peak RSS."""
    cli = str(Path(sys.executable).parent / "caption-wizard")
    args = [cli, "run", str(ROOT / "recipes" / "demo-shapes.yaml")]
    if model_path is not None:
        args += [f"model.id={model_path}", "model.source=local"]
    args += [*overrides, "--plain", "--runs-dir", str(tmp / "cli-runs")]
    t = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    if proc.returncode != 0:
        raise SystemExit(f"caption-wizard run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    run_dir = next((tmp / "cli-runs").iterdir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    logs = [e for e in events if e["type"] == "log"]
    end = next(e for e in events if e["type"] == "end")
    return {"wall_s": wall, "peak_rss": peak, "train_s": end["seconds"], "steps": end["step"],
            "first_loss": logs[0]["loss"], "last_loss": logs[-1]["loss"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40, help="steps per timed loop (first %d not timed)" % WARMUP)
    p.add_argument("--rounds", type=int, default=3, help="alternating bare/project rounds")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-process", action="store_true", help="skip the whole `caption-wizard run`")
    p.add_argument("--process-overrides", nargs="*", default=[], help="overrides for the whole-process run")
    args = p.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    model_path = model_folder(tmp)
    recipe = demo_recipe(model_path, [])
    weights = model_path or _demo_path()  # the shipped English base when it is there
    print(f"model: {weights}", flush=True)
    bare, project = [], []
    for r in range(args.rounds):
        bare.append(bare_loop(recipe, weights, args.steps))
        project.append(project_loop(recipe, weights, args.steps, tmp / f"r{r}"))
        print(f"round {r + 1}: bare {bare[-1][0]:.1f} samples/s ({bare[-1][1]:.1f} per CPU s), "
              f"project {project[-1][0]:.1f} samples/s ({project[-1][1]:.1f} per CPU s)", flush=True)
    print(f"threads {torch.get_num_threads()}, batch {recipe.train.batch_size}, {args.steps} steps "
          f"({WARMUP} untimed) x {args.rounds} rounds, medians:")
    for k, what in ((0, "samples/s (wall)"), (1, "samples per CPU second")):
        b, pj = statistics.median(x[k] for x in bare), statistics.median(x[k] for x in project)
        print(f"  {what:<22} bare {b:7.1f}   caption-wizard {pj:7.1f}   ratio {pj / b:.2f}")
    if not args.no_process:
        w = whole_process(model_path, args.process_overrides, tmp)
        print(f"whole `caption-wizard run` ({w['steps']} steps): {w['wall_s']:.1f} s wall, {w['train_s']:.1f} s "
              f"training, peak RSS {w['peak_rss'] / 2**20:.0f} MiB, loss {w['first_loss']:.3f} -> {w['last_loss']:.3f}")


def _demo_path():
    from wizard.demo.model import demo_base_path

    return demo_base_path()


if __name__ == "__main__":
    main()
