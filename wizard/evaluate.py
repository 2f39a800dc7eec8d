"""`caption-wizard eval RUN_DIR`: caption metrics on the held-out split, base model vs tuned model.

    caption-wizard eval runs/demo-shapes-20250101-120000            # all held-out images
    caption-wizard eval runs/demo-shapes-20250101-120000 --limit 50 --no-base

The held-out split is CaptionSet.eval of the run's own recipe (same seed, same split as training).
Both models caption the same images with the same prompt and generation settings; every caption
of an image is a reference. Results go to RUN_DIR/eval.json (atomic) and, as "eval" events, to
RUN_DIR/events.jsonl, where the dashboard shows them.

During training, the training callback calls `sample_metrics(model, processor, examples, recipe)`
on a small held-out sample when train.eval_metrics is true.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from wizard.errors import UserError
from wizard.metrics import METRICS
from wizard.rundir import EVAL_FILE, RECIPE_FILE, read_lock, read_state

SAMPLE_LIMIT = 16  # images captioned by sample_metrics during training


def sample_metrics(model, processor, examples, recipe, *, limit: int = SAMPLE_LIMIT) -> dict:
    """Caption up to `limit` examples with the model being trained and score them (eval mode, no grad).

    examples: wizard.data Examples (id, image, captions). Returns {"BLEU-1".., "CIDEr": float, "n": int}.
    The model's train/eval mode and the tokenizer's padding side are restored afterwards.
    """
    from wizard.chat import resolve_prompt
    from wizard.data import load_image
    from wizard.inference import Captioner
    from wizard.metrics import score_captions

    examples = list(examples)[:limit]
    if not examples:
        return {}
    captioner = Captioner(model, processor, resolve_prompt(recipe), recipe.generation, "training model", recipe)
    captions = captioner.caption([load_image(e) for e in examples], batch_size=recipe.train.batch_size)
    refs = {str(i): list(e.captions) for i, e in enumerate(examples)}
    return score_captions(refs, {str(i): c for i, c in enumerate(captions)}, language=recipe.data.language)


def no_held_out(run_dir: Path, recipe, images: int) -> UserError:
    """Why a run has nothing to score, and the one thing that helps."""
    from wizard.data.load import MIN_FOR_SPLIT

    if images < MIN_FOR_SPLIT and recipe.data.eval_fraction > 0:
        return UserError(f"run {run_dir.name} has no held-out images: its data set has {images} image(s), too few "
                         "to hold one out (eval scores images the run did not train on)",
                         hint="add images to the data set (a few dozen make a useful held-out split) and train a "
                              "new run: caption-wizard run RECIPE")
    return UserError(f"run {run_dir.name} has no held-out images (data.eval_fraction = {recipe.data.eval_fraction})",
                     hint="train with a held-out split, e.g. caption-wizard run RECIPE data.eval_fraction=0.05")


def held_out_examples(recipe, run_dir: Path, limit: int | None = None, progress=None) -> list:
    """The run's held-out examples (CaptionSet.eval), first `limit` of them."""
    from wizard.data.prepare import prepare_data

    # through the verified index of the run's data: the images are not checked again
    from wizard.images import limits_for

    caption_set = prepare_data(recipe.data, seed=recipe.train.seed, base_dir=data_base_dir(run_dir),
                               limits=limits_for(recipe.model)).captions
    _check_fingerprint(run_dir, getattr(caption_set, "fingerprint", None), progress)
    examples = list(caption_set.eval)
    if not examples:
        raise no_held_out(run_dir, recipe, caption_set.report.images)
    if progress is not None:
        progress.say(f"held-out split of {recipe.data.dataset}: {len(examples)} image(s) "
                     f"(data.eval_fraction={recipe.data.eval_fraction}, seed {recipe.train.seed})"
                     + (f"; scoring the first {limit}" if limit and limit < len(examples) else ""))
    return examples[:limit] if limit else examples


def data_base_dir(run_dir: Path) -> str | None:
    """Where relative dataset paths resolve: the recipe's folder lock.json recorded (as training did)."""
    return read_lock(run_dir).get("recipe_dir")


def _check_fingerprint(run_dir: Path, fingerprint: str | None, progress) -> None:
    dataset = read_lock(run_dir).get("dataset")
    trained = dataset.get("fingerprint") if isinstance(dataset, dict) else None
    if fingerprint and isinstance(trained, str) and trained != fingerprint and progress is not None:
        progress.say("warning: the dataset changed since this run trained (fingerprint "
                     f"{trained[:12]} -> {fingerprint[:12]}): the held-out images may differ")


def evaluate_run(run_dir, limit: int | None = None, base: bool = True, *, progress=None,
                 captioner=None, batch_size: int | None = None, on_batch=None, write: bool = True) -> dict:
    """Caption the held-out split with the tuned model (and the base), score both, record the result.

    Images are decoded one batch at a time, and each batch is captioned by both models.
    progress (wizard.progress): lines and status for the user; on_batch: called as
    on_batch(images_done, images_total) after each batch. write=False: only compute (the caller shows the scores, then calls save_eval).

    Returns what eval.json holds: {"run", "step", "n", "language", "prompt", "generation",
    "tuned": metrics, "base": metrics | None, "delta": {metric: tuned - base} | None, "samples": [...]}.
    """
    from wizard.chat import resolve_prompt
    from wizard.data import load_image
    from wizard.inference import base_captioner, load_captioner, passive_cpu_threads, run_adapter_dir
    from wizard.metrics import score_captions
    from wizard.recipe import load_recipe
    from wizard.rundir import load_run

    passive_cpu_threads()
    run_dir = Path(run_dir)
    load_run(run_dir)  # UserError unless it is a run folder
    if limit is not None and limit < 1:
        raise UserError(f"--limit {limit}: must be at least 1")
    recipe = load_recipe(run_dir / RECIPE_FILE)
    run_adapter_dir(run_dir)  # no adapter: say so before loading any data
    examples = held_out_examples(recipe, run_dir, limit, progress)
    captioner = captioner or load_captioner(run_dir, progress=progress)
    base_model = base_captioner(captioner) if base else None
    prompt, generation = resolve_prompt(recipe), recipe.generation
    batch_size = batch_size or recipe.train.batch_size
    tuned_caps: list[str] = []
    base_caps: list[str] | None = [] if base else None
    for start in range(0, len(examples), batch_size):
        images = [load_image(e) for e in examples[start:start + batch_size]]
        tuned_caps += captioner.caption(images, generation, prompt, batch_size=batch_size)
        if base_model is not None:
            base_caps += base_model.caption(images, generation, prompt, batch_size=batch_size)
        if on_batch is not None:
            on_batch(start + len(images), len(examples))

    refs = {str(i): list(e.captions) for i, e in enumerate(examples)}
    language = recipe.data.language
    tuned = score_captions(refs, {str(i): c for i, c in enumerate(tuned_caps)}, language=language)
    base_scores = None
    if base_caps is not None:
        base_scores = score_captions(refs, {str(i): c for i, c in enumerate(base_caps)}, language=language)

    state = read_state(run_dir)
    step = state.get("step") if isinstance(state.get("step"), int) else None
    result = {
        "run": run_dir.name,
        "step": step,
        "split": "eval",
        "n": len(examples),
        "language": language,
        "prompt": prompt,
        "generation": generation.model_dump(mode="json"),
        "tuned": tuned,
        "base": base_scores,
        "delta": {m: tuned[m] - base_scores[m] for m in METRICS} if base_scores else None,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "samples": [
            {"id": e.id, "references": list(e.captions), "tuned": tuned_caps[i],
             **({"base": base_caps[i]} if base_caps else {})}
            for i, e in enumerate(examples)
        ],
    }
    if write:
        save_eval(run_dir, result)
    return result


def save_eval(run_dir, result: dict, out=None) -> Path:
    """RUN_DIR/eval.json (or `out`, atomic) and the "eval" events; a read-only or full disk is a
    UserError naming the folder (the caller has shown the scores already, so nothing is lost)."""
    from wizard.rundir.events import EVENTS_FILE, EventWriter
    from wizard.fsutil import json_text, unwritable_error, write_user_file

    run_dir = Path(run_dir)
    path = Path(out) if out else run_dir / EVAL_FILE
    hint = "the scores are printed above; write them elsewhere with: caption-wizard eval RUN_DIR --out FILE.json"
    write_user_file(path, json_text(result, indent=2) + "\n", hint=hint)
    if out:
        return path
    try:
        writer = EventWriter(run_dir / EVENTS_FILE)
        try:
            for which in ("tuned", "base"):
                scores = result.get(which)
                if scores:
                    writer.emit("eval", sync=True, step=result.get("step"), which=which, n=scores["n"],
                                metrics={m: scores[m] for m in METRICS})
        finally:
            writer.close()
    except OSError as e:
        raise unwritable_error(run_dir / EVENTS_FILE, e, hint=f"the scores are in {path}") from None
    return path
