"""Check the data without training (`caption-wizard data RECIPE_OR_PATH`, wizard.commands.data, prints it).

    caption-wizard data recipes/qwen2-vl-2b-coco-en.yaml     # the recipe's data section
    caption-wizard data ~/pets                               # a path: the default recipe with that data
    caption-wizard run RECIPE --dry-run                      # the same check, then the memory estimate

Prints the detected format and why, counts, splits, bad rows by reason (the first few named as
file:line), caption lengths in tokens (the model's own tokenizer when its files are here, with the
family's end token; else a word count, said so) against train.max_target_length, image sizes and
the image tokens they become at data.max_pixels, the language guess, duplicate images and a few
example pairs. Bad data is a UserError (exit 2). Reads through the same verified index as `run`
(wizard.data.prepare), so a check warms the cache of the run that follows. No torch or transformers
import for Qwen-style (grid) families, whose image tokens are counted here exactly; other families'
are counted by their processor (transformers' own count, the one vLLM uses) when the model is on
this machine, else the catalog's figure per image.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from wizard.data.detect import locate
from wizard.data.prepare import Prepared, prepare_data
from wizard.errors import UserError
from wizard.images import limits_for

TOKEN_SAMPLE = 20_000  # captions tokenized for the length statistics
SHOW_EXAMPLES = 3


@dataclass
class DataCheck:
    prepared: Prepared
    token_counter: str  # "tokenizer of MODEL" | "words (no tokenizer here: an approximation)"
    lengths: list[int] = field(default_factory=list)  # caption lengths (tokens or words), a sample
    over_limit: int = 0  # of `lengths`, longer than train.max_target_length
    max_target_length: int = 0
    image_tokens: list[int] = field(default_factory=list)  # per image, at data.max_pixels
    downscaled: int = 0  # images larger than data.max_pixels (resized down by the processor)
    duplicates: list[list[str]] = field(default_factory=list)  # ids of images with the same content
    why: str = ""  # what auto-detection saw (wizard.data.detect: Located.why)
    image_tokens_how: str = ""  # "at data.max_pixels=N" | how the family's tokens were counted

    @property
    def captions(self):
        return self.prepared.captions


def check_recipe(recipe, *, base_dir=None, progress=None) -> DataCheck:
    """Prepare the data (UserError on bad data) and measure what training will see. `progress`
    (wizard.progress): a status line while the images are checked."""
    from wizard.progress import as_progress

    with as_progress(progress).status("checking the data…"):
        prepared = prepare_data(recipe.data, seed=recipe.train.seed, base_dir=base_dir,
                                limits=limits_for(recipe.model))
    cs = prepared.captions
    model_dir = local_model_dir(recipe.model)
    counter, how = _token_counter(model_dir)
    captions = [c for ex in cs.examples for c in ex.captions][:TOKEN_SAMPLE]
    lengths = counter(captions)
    limit = recipe.train.max_target_length
    tokens, downscaled, tokens_how = _image_token_counts(recipe, model_dir, cs)
    by_digest: dict[str, list[str]] = {}
    for ex in cs.examples:
        by_digest.setdefault(cs.digests[ex.id], []).append(ex.id)
    dups = [ids for ids in by_digest.values() if len(ids) > 1]
    why = locate(recipe.data, base_dir).why
    return DataCheck(prepared, how, lengths, sum(n > limit for n in lengths), limit, tokens, downscaled, dups, why,
                     tokens_how)


def _image_token_counts(recipe, model_dir: Path | None, cs) -> tuple[list[int], int, str]:
    """(image tokens per image, how many are resized down, how counted): the family's way of counting."""
    from wizard.catalog import model_family, model_info
    from wizard.families import DEFAULT

    try:
        fam = model_family(recipe.model) or DEFAULT
    except Exception:  # noqa: BLE001 - an unsupported folder is `run`'s error to report; count as Qwen
        fam = DEFAULT
    sizes = [(ex.id, cs.sizes.get(ex.id)) for ex in cs.examples]
    sizes = [(i, s) for i, s in sizes if s and s[0]]
    if fam.image_tokens == "grid":
        factor, min_pixels, max_pixels = _pixel_factor(model_dir), recipe.data.min_pixels, recipe.data.max_pixels
        tokens = [image_tokens(h, w, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels) for _, (w, h) in sizes]
        return tokens, sum(w * h > max_pixels for _, (w, h) in sizes), f"at data.max_pixels={max_pixels:,}"
    note = "" if fam.pixel_budget != "fixed" else "; data.max_pixels does not apply"
    counted = _processor_counts(model_dir, [(h, w) for _, (w, h) in sizes]) if model_dir else None
    if counted is not None:
        return counted, 0, f"({fam.title}, counted by its processor{note})"
    n = model_info(recipe.model.id).image_tokens(recipe.data.max_pixels)
    return [n] * len(sizes), 0, f"({fam.title}: the catalog's {n:,} per image, the model is not here yet{note})"


def _processor_counts(model_dir: Path, sizes: list[tuple[int, int]]) -> list[int] | None:
    """Image tokens per (height, width) as the model's own processor counts them (transformers'
    _get_num_multimodal_tokens, what vLLM uses); None when it cannot (no such helper, no processor)."""
    if not sizes:
        return []
    try:
        import logging

        logging.getLogger("transformers").setLevel(logging.ERROR)
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(str(model_dir))
        counter = getattr(processor, "_get_num_multimodal_tokens", None)
        if counter is None:  # Mllama: one <|image|> token each (the image goes in through cross-attention)
            return [1] * len(sizes)
        unique = sorted(set(sizes))
        per = dict(zip(unique, counter(image_sizes=[list(s) for s in unique])["num_image_tokens"]))
        return [int(per[s]) for s in sizes]
    except Exception:  # noqa: BLE001 - a count we cannot make falls back to the catalog's figure
        return None


def remote_data_note(recipe, base_dir=None) -> str | None:
    """For `run --dry-run`: a ModelScope dataset that is not a local folder is not downloaded by a dry
    run (it can be gigabytes); say when it is checked instead. None: the data is here (check it)."""
    located = locate(recipe.data, base_dir)  # a local path that does not exist: UserError, exit 2
    if located.path is not None or located.format == "shapes":
        return None
    return (f"data: {recipe.data.dataset} ({located.format}) is a ModelScope dataset: it is downloaded and "
            f"checked when the run starts, or now with: caption-wizard data RECIPE")


# ----------------------------------------------------------------------------- the report
def report_lines(check: DataCheck, recipe, *, examples: int = SHOW_EXAMPLES) -> list[str]:
    cs, r = check.captions, check.captions.report
    how = f"detected: {check.why or 'its layout'}" if r.detected else "set in data.format"
    out = [f"data: {r.source}",
           f"  format: {r.format} ({how}); rows from {r.file}",
           f"  {r.images:,} images, {r.captions:,} captions from {r.rows_read:,} rows",
           f"  split: {r.num_train:,} train / {r.num_eval:,} eval images (data.eval_fraction={recipe.data.eval_fraction}"
           f", seed {recipe.train.seed})" + (f"; data.max_samples kept {r.images:,} of {r.capped_from:,}"
                                             if r.capped_from else "")]
    out += [f"  {i}" for i in r.info]
    if r.bad_rows:
        why = ", ".join(f"{k}: {v:,}" for k, v in sorted(r.bad_by_reason.items(), key=lambda kv: -kv[1]))
        out.append(f"  bad rows skipped: {r.bad_rows:,} ({why}); the first:")
        out += [f"    {b}" for b in r.first_bad]
    else:
        out.append("  bad rows: none")
    out += _length_lines(check)
    out += _image_lines(check, recipe)
    names = {"en": "English", "zh": "Chinese", "mixed": "mixed"}
    agree = ("matches " if r.language_guess == recipe.data.language else
             "DIFFERS from " if r.language_guess in names and r.language_guess != "mixed" else "")
    out.append(f"  language: captions look {names.get(r.language_guess, r.language_guess)}; {agree}"
               f"data.language={recipe.data.language}")
    if check.duplicates:
        extra = sum(len(ids) - 1 for ids in check.duplicates)
        first = ", ".join(" = ".join(sorted(ids)[:3]) for ids in check.duplicates[:3])
        out.append(f"  duplicate images: {extra:,} extra copies of {len(check.duplicates):,} images (the same "
                   f"content under another name), e.g. {first}")
    else:
        out.append("  duplicate images: none")
    out += [f"  note: {n}" for n in r.notes]
    out.append(f"  {check.prepared.summary().removeprefix('data: ')}")
    if examples:
        out.append("  examples:")
        out += [f"    {line}" for line in example_lines(cs, examples)]
    return out


def _length_lines(check: DataCheck) -> list[str]:
    n = check.lengths
    if not n:
        return []
    q = sorted(n)
    p95 = q[min(len(q) - 1, int(0.95 * len(q)))]
    sample = f" (first {len(n):,})" if len(n) == TOKEN_SAMPLE else ""
    out = [f"  caption length{sample}, {check.token_counter}: median {statistics.median(q):g}, 95% {p95}, "
           f"max {q[-1]}"]
    if check.over_limit:
        out.append(f"    {check.over_limit:,} captions are longer than train.max_target_length="
                   f"{check.max_target_length} and will be cut (raise it, or accept the cut)")
    else:
        out.append(f"    none longer than train.max_target_length={check.max_target_length}")
    return out


def _image_lines(check: DataCheck, recipe) -> list[str]:
    sizes = [s for s in check.captions.sizes.values() if s and s[0]]
    if not sizes:
        return []
    areas = sorted(sizes, key=lambda s: s[0] * s[1])
    med = areas[len(areas) // 2]
    t = sorted(check.image_tokens)
    out = [f"  image sizes: smallest {_wh(areas[0])}, median {_wh(med)}, largest {_wh(areas[-1])}",
           f"  image tokens {check.image_tokens_how or f'at data.max_pixels={recipe.data.max_pixels:,}'}: "
           f"median {t[len(t) // 2]:,}, "
           f"max {t[-1]:,} per image"
           + (f"; {check.downscaled:,} images are resized down to fit" if check.downscaled else "")]
    return out


def _wh(size) -> str:
    return f"{size[0]}x{size[1]}"


def example_lines(captions, n: int = SHOW_EXAMPLES, width: int = 100) -> list[str]:
    """A few (image, caption) pairs from the training split, for a human to eyeball."""
    out = []
    for ex in (captions.train or captions.eval)[:n]:
        text = ex.captions[0] if ex.captions else ""
        text = text if len(text) <= width else text[: width - 1] + "…"
        more = f" (+{len(ex.captions) - 1} more)" if len(ex.captions) > 1 else ""
        out.append(f"{ex.id}: {text}{more}")
    return out


# ----------------------------------------------------------------------------- model facts, cheaply
def local_model_dir(model) -> Path | None:
    """The model's folder when it is on this machine (never downloads); None otherwise."""
    try:
        if model.source == "demo":
            from wizard.demo.model import demo_base_path

            path = Path(demo_base_path())
        elif model.source == "local" or Path(model.id).expanduser().is_dir():
            path = Path(model.id).expanduser()
        else:
            from wizard.hub import cached_snapshot

            # the download manifest of a complete earlier download (what resolve_model would reuse)
            snap = cached_snapshot("model", model.id, model.revision or "master")
            path = snap.path if snap else None
    except Exception:  # noqa: BLE001 - a missing or odd cache only means: no tokenizer here
        return None
    return path if path is not None and path.is_dir() else None


def _token_counter(model_dir: Path | None):
    """(count(captions) -> lengths, description): the model's tokenizer (the `tokenizers` library
    reads tokenizer.json without transformers) counting as training does (caption + end of turn)."""
    file = model_dir / "tokenizer.json" if model_dir else None
    if file is not None and file.is_file():
        try:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(file))
            tok.no_padding()  # tokenizer.json may pad a batch to its longest caption
            tok.no_truncation()
            end = _end_token(model_dir, tok)

            def count(captions: list[str]) -> list[int]:
                enc = tok.encode_batch([c.strip() + end for c in captions], add_special_tokens=False)
                return [len(e.ids) + (0 if end else 1) for e in enc]

            return count, f"tokens of {model_dir.name}'s tokenizer"
        except Exception:  # noqa: BLE001 - fall back to the approximation below
            pass
    return (lambda captions: [len(c.split()) or len(c) for c in captions],
            "in words (the model's tokenizer is not on this machine yet: an approximation; "
            "Chinese counts characters)")


def _end_token(model_dir: Path, tok) -> str:
    """The token training appends to each caption (wizard.chat.end_token): the family's end of turn
    if the vocabulary has it, else the tokenizer's eos (tokenizer_config.json)."""
    import json

    from wizard.families import FAMILIES, read_config

    fam = FAMILIES.get((read_config(model_dir) or {}).get("model_type"))
    end = fam.end_token if fam is not None else "<|im_end|>"
    if end and tok.token_to_id(end) is not None:
        return end
    try:
        eos = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8")).get("eos_token")
    except (OSError, ValueError):
        eos = None
    eos = eos.get("content") if isinstance(eos, dict) else eos
    return eos if isinstance(eos, str) and tok.token_to_id(eos) is not None else ""


def _pixel_factor(model_dir: Path | None) -> int:
    """Pixels per side of one image token: patch_size x merge_size (28 for Qwen2-VL and Qwen2.5-VL)."""
    import json

    for name in ("preprocessor_config.json", "processor_config.json"):
        try:
            cfg = json.loads((model_dir / name).read_text(encoding="utf-8")) if model_dir else None
        except (OSError, ValueError):
            continue
        if cfg:
            cfg = cfg.get("image_processor", cfg)
            return int(cfg.get("patch_size", 14)) * int(cfg.get("merge_size", 2))
    return 28


def image_tokens(height: int, width: int, *, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> int:
    """Image tokens of one image after Qwen2-VL's smart resize (wizard.families.grid_tokens)."""
    from wizard.families import grid_tokens

    return grid_tokens(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


# ----------------------------------------------------------------------------- entry points
def check_own_data(dataset: str, *, progress=None, seed: int = 42, **data) -> tuple[list[str], UserError | None]:
    """For the wizard, right after the user named their own data: (lines, None) with the summary line,
    the first bad rows and 3 examples, or ([], the reason it cannot be used) (the wizard goes on: a
    later question may fix it, e.g. the format). `data`: other data settings known by then."""
    from wizard.progress import as_progress
    from wizard.recipe import DataSpec

    try:
        with as_progress(progress).status("checking your data…"):
            prepared = prepare_data(DataSpec(dataset=dataset, **data), seed=seed)
    except UserError as e:
        return [], e
    report = prepared.captions.report
    lines = [prepared.summary()] + [f"  skipped {b}" for b in report.first_bad[:3]]
    lines += [f"  note: {n}" for n in report.notes] + [f"  {line}" for line in example_lines(prepared.captions)]
    return lines, None
