"""Peak RSS and samples/s of caption-wizard's training path vs a bare torch loop, on a model with
Qwen2-VL-2B's real widths (wizard/demo/realshape.py: hidden 1536, MLP 8960, vocab 151936, tied
embeddings, Qwen's special-token ids; 2 language layers + 2 vision blocks, random weights),
448x448 images (256 image tokens), ~30-token captions, fp32, CPU.

    python bench/realshape.py             # lora, qlora, full x batch 2 and 4; 2 rounds of 8 steps
    python bench/realshape.py --quick     # 1 round of 5 steps (about 10 minutes on 2 busy cores)
    python bench/realshape.py --strategies lora --batches 4 --rounds 3 --checkpointing on

Each contender runs in its own subprocess (OMP_WAIT_POLICY=PASSIVE for all), one at a time,
alternating which goes first, so machine load hits both alike:

  caption-wizard  the training path of `caption-wizard run`: the model plan (wizard.model), the
                  adapters (wizard.train.load), the tokenize-once dataset and collator, and the
                  CaptionTrainer with its callbacks exactly as wizard.train.backend builds them.
  bare            plain transformers + peft: from_pretrained in fp32 (BitsAndBytesConfig for
                  qlora), get_peft_model (LoRA r8 on the language model), `model(**batch).loss`
                  (full logits, as most scripts write it), backward, AdamW, over batches built
                  beforehand with the same collator.

Peak RSS is the process's whole-life peak (VmHWM: loading included, as a user's `top` shows).
samples/s is timed from the end of the first WARMUP steps to the end of the last. The baseline
figures for ms-swift 4.6 come from issue 10's table (measured on this kind of machine, same model
shape): LoRA 3.77 GB and 0.40 samples/s, QLoRA 3.85 GB and 0.52 samples/s; ms-swift is not
installed here.
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
WARMUP = 2
GiB = 2 ** 30  # the "GB" are GiB: it calls 2 x 716 MiB of logits "1.4 GB"
MS_SWIFT = {"lora": (3.77 * GiB, 0.40), "qlora": (3.85 * GiB, 0.52)}  # issue 10: peak RSS, samples/s
MODEL_DIR = Path(tempfile.gettempdir()) / "cw-realshape-qwen2vl2b"


def recipe_for(model: Path, strategy: str, batch: int, steps: int, gc="auto"):
    from wizard.recipe import Recipe

    return Recipe.model_validate({
        "name": "realshape", "model": {"id": str(model), "source": "local"},
        "data": {"dataset": "realshape", "max_pixels": 448 * 448, "min_pixels": 3136, "eval_fraction": 0.0},
        "tuning": {"strategy": strategy, "lora": {"rank": 8, "alpha": 16, "dropout": 0.0, "modules_to_save": []}},
        "train": {"batch_size": batch, "max_steps": steps, "precision": "fp32", "gradient_checkpointing": gc,
                  "max_target_length": 32, "save_steps": 10 ** 6, "logging_steps": 1, "warmup_ratio": 0.0,
                  "learning_rate": 1e-4},
        "launch": {"devices": "cpu"},
    })


def checkpointing_arg(text: str):
    """--checkpointing on|off|auto -> train.gradient_checkpointing (True, False, "auto")."""
    return {"on": True, "off": False, "auto": "auto"}[text]


def checkpointing_flag(value) -> str:
    return {True: "on", False: "off"}.get(value, value)


def peak_rss() -> int:
    from wizard.machine import peak_rss as own_peak  # VmHWM: not the forked parent's size

    return own_peak()


# ----------------------------------------------------------------------------- contenders (children)
def project(recipe, n_images: int, device: str = "cpu", model=None, processor=None) -> float:
    """caption-wizard: the model plan + adapters + dataset + CaptionTrainer as the backend builds them."""
    from transformers import TrainerCallback

    from wizard.chat import resolve_prompt
    from wizard.demo.realshape import realshape_examples
    from wizard.rundir.events import RunRecorder
    from wizard.runner import create_run
    from wizard.train import backend
    from wizard.train.callbacks import StopFlag
    from wizard.train.collate import CaptionCollator, build_dataset, pixel_cache
    from wizard.train.load import load_model

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == WARMUP:
                _sync(device)
                self.t0 = time.perf_counter()
            self.t1 = time.perf_counter()

    class Resolved:
        path, files, revision = Path(recipe.model.id), {}, None

    tmp = Path(tempfile.mkdtemp(prefix="cw-rs-"))
    run_dir = create_run(recipe, Resolved(), runs_dir=tmp)
    if model is None:
        model, processor = load_model(recipe, Path(recipe.model.id), for_training=True, device=device)
    examples = realshape_examples(n_images)
    data = build_dataset(examples, processor, resolve_prompt(recipe), max_target_length=recipe.train.max_target_length,
                         cache=pixel_cache(recipe, examples))
    collator = CaptionCollator(processor, data)
    trainer, _ = backend._build_trainer(run_dir, recipe, model, processor, backend.Data(data, None, collator, "rs", []),
                                        device, RunRecorder(run_dir), StopFlag(), None)
    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    project.tokens = trainer.tokens.tokens  # non-padding tokens the trainer counted
    return (recipe.train.max_steps - WARMUP) * recipe.train.batch_size / (clock.t1 - clock.t0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def bare_model(recipe, device: str = "cpu"):
    """Plain transformers + peft, as a short script loads it: (model, processor)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig

    path, strategy = recipe.model.id, recipe.tuning.strategy.value
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    kwargs = {"dtype": dtype, "device_map": {"": device}}
    if strategy == "qlora":
        kwargs.update(quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype, llm_int8_skip_modules=["visual", "lm_head"]))
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    model.config.use_cache = False
    if strategy == "full":
        for name, p in model.named_parameters():
            p.requires_grad_(".visual." not in f".{name}")
    else:
        model = get_peft_model(model, LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
            target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"))
    from wizard.train.load import checkpointing_here

    if checkpointing_here(recipe, device)[0]:  # as caption-wizard decides it: the same work
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, AutoProcessor.from_pretrained(path)


def bare(recipe, n_images: int, device: str = "cpu", model=None, processor=None) -> float:
    """A torch loop over pre-built batches: `model(**batch).loss` (full logits), backward, AdamW."""
    import torch

    from wizard.chat import resolve_prompt
    from wizard.demo.realshape import realshape_examples
    from wizard.train.collate import CaptionCollator, build_dataset

    torch.manual_seed(0)
    if model is None:
        model, processor = bare_model(recipe, device)
    bs = recipe.train.batch_size
    data = build_dataset(realshape_examples(n_images), processor, resolve_prompt(recipe), max_target_length=32)
    collator = CaptionCollator(processor, data)
    steps = recipe.train.max_steps
    batches = [{k: v.to(device) for k, v in collator([data[(s * bs + k) % len(data)] for k in range(bs)]).items()}
               for s in range(steps)]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    for i, batch in enumerate(batches):
        if i == WARMUP:
            _sync(device)
            t0 = time.perf_counter()
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    _sync(device)
    bare.tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    return (steps - WARMUP) * bs / (time.perf_counter() - t0)


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads) if args.threads else None
    recipe = recipe_for(Path(args.model), args.strategy, args.batch, args.steps, args.gc)
    speed = (project if args.child == "project" else bare)(recipe, n_images=args.batch * args.steps)
    print(json.dumps({"samples_s": speed, "peak_rss": peak_rss()}), flush=True)


# ----------------------------------------------------------------------------- parent
def ensure_model(folder: Path) -> Path:
    if not (folder / "config.json").is_file():
        print(f"building the real-shape model in {folder} ...", flush=True)
        code = "import sys; from wizard.demo.realshape import build_realshape; build_realshape(sys.argv[1])"
        subprocess.run([sys.executable, "-c", code, str(folder)], check=True, env=child_env())
    return folder


def child_env() -> dict:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONPATH=str(ROOT), TQDM_DISABLE="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def run_child(who: str, model: Path, strategy: str, batch: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", who, "--model", str(model), "--strategy", strategy,
           "--batch", str(batch), "--steps", str(args.steps), "--checkpointing", checkpointing_flag(args.gc)] + (
        ["--threads", str(args.threads)] if args.threads else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{who} {strategy} batch {batch} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    from wizard.estimate import estimate_memory

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 round of 5 steps")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=8, help=f"steps per contender (the first {WARMUP} untimed)")
    p.add_argument("--strategies", nargs="*", default=["lora", "qlora", "full"])
    p.add_argument("--batches", nargs="*", type=int, default=[2, 4])
    p.add_argument("--checkpointing", dest="gc", default="auto", type=checkpointing_arg,
                   help="train.gradient_checkpointing for both contenders: auto (the recipe default: off when "
                        "the estimate fits the RAM with room to spare), on (ms-swift's default), off")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--model", default=str(MODEL_DIR), help="where the real-shape model is (built if missing)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--child", choices=["project", "bare"], help=argparse.SUPPRESS)
    p.add_argument("--strategy", default="lora", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.rounds, args.steps = 1, 5
    model = ensure_model(Path(args.model))
    results: dict = {}
    for r in range(args.rounds):
        for strategy in args.strategies:
            for batch in args.batches:
                order = ["project", "bare"] if r % 2 == 0 else ["bare", "project"]
                for who in order:
                    got = run_child(who, model, strategy, batch, args)
                    results.setdefault((strategy, batch, who), []).append(got)
                    print(f"round {r + 1} {strategy:5} batch {batch} {who:8}: {got['samples_s']:.3f} samples/s, "
                          f"peak RSS {got['peak_rss'] / GiB:.2f} GiB", flush=True)
    from wizard.estimate import checkpointing

    decided = checkpointing(recipe_for(model, args.strategies[0], args.batches[-1], args.steps, args.gc), [])[1]
    print(f"\nmedians over {args.rounds} round(s), {args.steps} steps ({WARMUP} untimed), fp32 CPU; {decided}:")
    print(f"{'strategy':8} {'batch':>5} | {'caption-wizard':>22} | {'bare loop':>22} | {'ms-swift (issue 10)':>20}")
    table = []
    for strategy in args.strategies:
        for batch in args.batches:
            row = {"strategy": strategy, "batch": batch}
            for who in ("project", "bare"):
                got = results[(strategy, batch, who)]
                row[who] = {"samples_s": statistics.median(g["samples_s"] for g in got),
                            "peak_rss": statistics.median(g["peak_rss"] for g in got)}
            est = estimate_memory(recipe_for(model, strategy, batch, args.steps, args.gc), []).per_device_bytes
            row["estimate"] = est
            swift = MS_SWIFT.get(strategy) if batch == 4 else None
            ref = f"{swift[0] / GiB:.2f} GiB {swift[1]:.2f}/s" if swift else "-"
            print(f"{strategy:8} {batch:>5} | {row['project']['peak_rss'] / GiB:6.2f} GiB {row['project']['samples_s']:6.3f}/s"
                  f"     | {row['bare']['peak_rss'] / GiB:6.2f} GiB {row['bare']['samples_s']:6.3f}/s     | {ref:>20}")
            print(f"{'':16}   memory estimate {est / GiB:.2f} GiB: x{est / row['project']['peak_rss']:.2f} the measured "
                  f"peak (target 0.8-1.2); bare loop / caption-wizard samples/s "
                  f"{row['bare']['samples_s'] / row['project']['samples_s']:.2f}")
            if swift:
                print(f"{'':16}   vs ms-swift: RSS x{row['project']['peak_rss'] / swift[0]:.2f} (target <= 0.8), "
                      f"samples/s x{row['project']['samples_s'] / swift[1]:.2f} (target >= 1.3)")
            table.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
