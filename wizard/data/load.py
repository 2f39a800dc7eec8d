"""load_caption_set: recipe.data -> checked examples, a held-out split, a report and a fingerprint.

    cs = load_caption_set(recipe.data, seed=recipe.train.seed)
    cs.train, cs.eval, cs.report.lines(), cs.fingerprint

Steps: find the data and its format (detect.py) -> read rows (adapters.py, tables.py, builtin.py)
-> check every image once (read, hash, decode; in threads; through prepare.py's index when given a
verifier) and drop bad rows, counting them -> merge rows of the same image
-> cap (data.max_samples) and split by a seeded hash of each image's id -> fingerprint.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from wizard.data.adapters import ReadResult, Row, read_coco, read_imagefolder, read_messages
from wizard.data.detect import Located, locate, search_dirs
from wizard.data.examples import (BadRow, CaptionSet, DataReport, Example, fingerprint, guess_language, image_digest,
                                  inspect_image_bytes, inspect_image_file)
from wizard.data.formats import EXPLAIN, READERS
from wizard.data.urls import fetch_images
from wizard.errors import UserError

MAX_BAD_FRACTION = 0.05  # more bad rows than this: stop, the data is probably not what the user meant
SHOW_BAD = 5  # bad rows named in the report and in errors
_KIND = re.compile(r"[^:(]+")


def load_caption_set(data_spec, *, seed: int, base_dir: str | Path | None = None, progress=None,
                     verifier=None, limits=None) -> CaptionSet:
    """Read recipe.data. `base_dir`: where a relative data.dataset is looked for first (then the cwd).
    `progress` (wizard.progress): the summary lines, a status line while checking many images; None: silent.
    `verifier`: checks the images of the rows (wizard.data.prepare.IndexVerifier: cached on disk);
    None: every image is checked here (once per process). `limits`: the image shapes the model's
    processor refuses (wizard.images.limits_for(recipe.model); None: the safe default)."""
    from wizard.data.textfile import collect_notes

    located = locate(data_spec, base_dir)
    with collect_notes() as text_notes:  # "captions.txt is GB18030/GBK text, not UTF-8: read as ..."
        result = fetch_images(_read(located, data_spec, base_dir, progress), progress)  # image URLs -> cached files
    if verifier is not None:
        verifier.bind(located, result, data_spec)
    examples, digests, sizes, report = _collect(result, located, data_spec, progress, verifier)
    report.notes.extend(text_notes)
    from wizard.data.filter import apply_filter, is_active

    if is_active(data_spec):  # data.filter: CLIP score, image size, near-duplicates
        examples = apply_filter(examples, digests, data_spec, report, progress)
    held_out = None if result.held_out is None else {e.id for e in examples if e.image in result.held_out}
    if verifier is not None:
        verifier.collected(examples, digests, sizes, report, held_out)
    prompts = Counter(r.prompt for r in result.rows if r.prompt)
    caption_set = finish_caption_set(examples, digests, sizes, report, data_spec, seed=seed, prompts=prompts,
                                     held_out=held_out, limits=limits)
    if progress is not None:
        for line in caption_set.report.lines():
            progress.say(line)
    return caption_set


def finish_caption_set(examples: list[Example], digests: dict[str, str], sizes: dict, report: DataReport, data_spec,
                       *, seed: int, prompts: Counter | None = None, held_out: set[str] | None = None,
                       limits=None) -> CaptionSet:
    """Checked examples -> the images the processor takes, the seeded split, the counts of the report
    and the fingerprint. `held_out`: ids of the images the data file itself holds out (Karpathy test).
    `limits`: wizard.images.ImageLimits (applied here, after the index: it holds every checked image)."""
    examples = _within_limits(examples, sizes, report, limits)
    held = None if held_out is None else {e.image for e in examples if e.id in held_out}
    train, eval_ = split_examples(examples, seed=seed, eval_fraction=data_spec.eval_fraction,
                                  max_samples=data_spec.max_samples, report=report, held_out=held)
    kept = train + eval_
    report.images, report.captions = len(kept), sum(len(e.captions) for e in kept)
    report.num_train, report.num_eval = len(train), len(eval_)
    if not eval_ and held is None and data_spec.eval_fraction > 0:  # eval_count: nothing out of fewer than 2
        report.notes.append(f"{len(kept)} image(s): too few to hold any out for evaluation (that takes at least "
                            f"{MIN_FOR_SPLIT}); all train, so the run has no eval loss and nothing to score afterwards. "
                            "Add images (a few dozen make a useful held-out split) to measure the tuning")
    report.notes.extend(_prompt_notes(data_spec, prompts or Counter(), report.language_guess))
    return CaptionSet(train, eval_, report, fingerprint(kept, digests), digests, sizes)


def _within_limits(examples: list[Example], sizes: dict, report: DataReport, limits) -> list[Example]:
    """Drop (and name, as bad rows) the images the model's processor would refuse mid-training."""
    from wizard.images import DEFAULT_LIMITS, size_problem

    kept, dropped = [], []
    for ex in examples:
        size = sizes.get(ex.id)
        problem = size_problem(size, limits or DEFAULT_LIMITS) if size and size[0] else None
        (dropped if problem else kept).append((ex, problem))
    if not dropped:
        return examples
    for ex, problem in dropped:
        kind, _, why = problem.partition(" (")
        report.bad_by_reason[kind] = report.bad_by_reason.get(kind, 0) + 1
        if len(report.first_bad) < 2 * SHOW_BAD:
            report.first_bad.append(BadRow(ex.id, f"{kind} ({why}"))
    report.bad_rows += len(dropped)
    if not kept:
        raise UserError(f"no usable examples in {report.file}: every image is refused, e.g. {dropped[0][0].id}: "
                        f"{dropped[0][1]}", hint="crop or pad the images to a less extreme shape")
    return [ex for ex, _ in kept]


def _read(located: Located, spec, base_dir, progress) -> ReadResult:
    fmt, path = located.format, located.path
    if fmt in READERS:  # the formats of wizard/data/formats.py: papers' files, tables, shards, LLaMA-Factory
        return READERS[fmt](path, spec, search_dirs(base_dir))
    if fmt == "imagefolder":
        return read_imagefolder(path, spec.language)
    if fmt == "coco":
        return read_coco(path, spec.image_dir or spec.subset, search_dirs(base_dir))
    if fmt == "messages":
        return read_messages(path)
    if fmt == "hf":
        from wizard.data.tables import read_hf

        return read_hf(path, spec.subset, spec.language, spec.columns)
    from wizard.data import builtin

    if fmt == "shapes":
        return builtin.read_shapes(spec.max_samples, spec.language)
    return builtin.read_modelscope(fmt, spec, path, progress)


# ----------------------------------------------------------------------------- checking rows
# (path, size, mtime) -> result: a second load in the same process (eval after training) is cheap
Check = tuple  # (digest | None, reason | None, (width, height) | None)
_checked: dict[tuple[str, int, int], Check] = {}
_CHECKED_MAX = 500_000  # entries kept (about 100 MB); beyond that, start over
CHUNK = 128  # images per task of the thread pool: low overhead for small images, balanced for big ones


def _check_path(path: Path) -> Check:
    """(digest, None, size) or (None, reason, None); each file is read and decoded once per process."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, "image not found", None
    except OSError as e:
        return None, f"image cannot be read ({e.strerror or e})", None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _checked:
        if len(_checked) >= _CHECKED_MAX:
            _checked.clear()
        _checked[key] = inspect_image_file(path)
    return _checked[key]


def check_source(image) -> Check:
    if isinstance(image, Path):
        return _check_path(image)
    if isinstance(image, (bytes, bytearray)):
        return inspect_image_bytes(bytes(image))
    if isinstance(image, Image.Image):
        return image_digest(image), None, image.size
    return None, f"unsupported image value ({type(image).__name__})", None


def _check_chunk(images: list) -> list[Check]:
    return [check_source(im) for im in images]


def check_parallel(images: list, progress=None, check_chunk=_check_chunk) -> list[Check]:
    """Check images in file order, in threads: Pillow decodes and hashlib hashes without the GIL
    (measured on 2 cores: threads 3,100 images/s, processes 2,900 with their start-up, one thread
    1,600; bench/data_scale.py), and a thread pool starts instantly and shares the rows."""
    if len(images) < 2 * CHUNK:
        return check_chunk(images)
    from wizard.progress import as_progress

    with as_progress(progress).status(f"checking {len(images):,} images…"):
        chunks = [images[i:i + CHUNK] for i in range(0, len(images), CHUNK)]
        with ThreadPoolExecutor(max_workers=min(16, 2 * (os.cpu_count() or 1))) as pool:
            return [r for chunk in pool.map(check_chunk, chunks) for r in chunk]


def _check_all(rows: list[Row], progress, verifier=None) -> list[Check]:
    """Check the image of every usable row, in file order (through the verifier's cache if given)."""
    todo = [r.image for r in rows if r.problem is None and r.captions and r.image is not None]
    if verifier is not None:
        return verifier.check(todo, progress)
    return check_parallel(todo, progress)


def _display(row: Row, root: Path | None) -> str:
    if isinstance(row.image, Path):
        return _relative(row.image, root) or str(row.image)
    return f"embedded image {row.name}" if row.name else "embedded image"


def _relative(path: Path, root: Path | None) -> str | None:
    if root is None:
        return None
    rel = os.path.relpath(os.path.normpath(os.path.abspath(path)), os.path.abspath(root))
    return None if rel.startswith("..") else rel.replace(os.sep, "/")


def _example_id(row: Row, digest: str, root: Path | None) -> str:
    """A path relative to the dataset for files inside it; otherwise digest-based (and so the same
    on every machine and in every row order)."""
    if row.id:
        return row.id
    if isinstance(row.image, Path):
        return _relative(row.image, root) or f"{digest[:12]}-{row.image.name}"
    return f"{digest[:16]}-{row.name}" if row.name else digest[:16]


def _collect(result: ReadResult, located: Located, spec, progress, verifier=None):
    rows = result.rows
    checks = iter(_check_all(rows, progress, verifier))
    report = DataReport(source=str(located.path or spec.dataset), format=located.format,
                        file=str(result.file), detected=located.detected, rows_read=len(rows),
                        info=list(result.info))
    bad: list[BadRow] = []
    reasons: Counter = Counter()
    by_id: dict[str, Example] = {}
    digests: dict[str, str] = {}
    sizes: dict[str, tuple[int, int]] = {}

    def skip(row: Row, reason: str) -> None:
        kind = _KIND.match(reason)  # "image not found: a.png" counts as "image not found"
        reasons[kind.group().strip() if kind else reason] += 1
        if len(bad) < SHOW_BAD:
            bad.append(BadRow(row.where, reason))

    for row in rows:
        if row.problem is not None:
            skip(row, row.problem)
            continue
        if not row.captions:
            skip(row, "empty caption")
            continue
        if row.image is None:
            skip(row, "no image")
            continue
        digest, reason, size = next(checks)
        if reason == "image not found" and isinstance(row.image, Path):
            digest, reason, size = _normalized(row, verifier) or (digest, reason, size)
        if reason:  # "not a readable image (why)" -> "not a readable image: a.png (why)"
            kind, sep, why = reason.partition(" (")
            skip(row, f"{kind}: {_display(row, result.root)}{' (' + why if sep else ''}")
            continue
        ex_id = _example_id(row, digest, result.root)
        ex = by_id.get(ex_id)
        if ex is None:
            by_id[ex_id] = Example(ex_id, row.image, list(dict.fromkeys(row.captions)))
            digests[ex_id] = digest
            sizes[ex_id] = size
        else:
            ex.captions.extend(c for c in row.captions if c not in ex.captions)

    report.bad_rows, report.bad_by_reason, report.first_bad = sum(reasons.values()), dict(reasons), bad
    examples = list(by_id.values())
    report.language_guess = guess_language([c for ex in examples[:2000] for c in ex.captions])
    _check_bad_fraction(report, result, located)
    if not examples:
        raise UserError(f"no usable examples in {result.file} ({report.rows_read} rows read)",
                        hint="check data.dataset and data.format; " + "; ".join(map(str, bad[:3])))
    return examples, digests, sizes, report


def _normalized(row: Row, verifier) -> Check | None:
    """A missing image named in NFC that is on disk in NFD (macOS), or the other way round: the row
    now points at the file as stored, checked like any other. None: not there in any form."""
    from wizard.fsnames import find_normalized

    found = find_normalized(row.image)
    if found is None:
        return None
    row.image = found
    return (verifier.check([found]) if verifier is not None else [check_source(found)])[0]


def _check_bad_fraction(report: DataReport, result: ReadResult, located: Located) -> None:
    if not report.rows_read or report.bad_rows / report.rows_read <= MAX_BAD_FRACTION:
        return
    fetched_only = set(report.bad_by_reason) == {"image not fetched"}
    if located.format == "coco_csv" or fetched_only:  # images fetched by URL: dead links are not the user's to fix
        report.notes.append(f"{report.bad_rows:,} of {report.rows_read:,} images could not be used "
                            f"(mostly dead image links); training on the rest")
        return
    pct = 100 * report.bad_rows / report.rows_read
    lines = [f"{report.bad_rows:,} of {report.rows_read:,} rows of {result.file} are bad ({pct:.0f}%; "
             f"caption-wizard stops above {MAX_BAD_FRACTION:.0%}):"]
    lines += [f"    {b}" for b in report.first_bad]
    if report.bad_rows > len(report.first_bad):
        kinds = ", ".join(f"{k}: {v}" for k, v in Counter(report.bad_by_reason).most_common())
        lines.append(f"    ... {report.bad_rows - len(report.first_bad):,} more ({kinds})")
    lines += [f"    ({EXPLAIN[k]})" for k in report.bad_by_reason if k in EXPLAIN]
    where = f"paths are relative to {result.root}; " if result.root and located.format != "shapes" else ""
    raise UserError("\n".join(lines),
                    hint=f"fix or remove those rows ({where}read as data.format={located.format}"
                         f"{' (detected)' if located.detected else ''})")


def _prompt_notes(spec, prompts: Counter, guess: str) -> list[str]:
    from wizard.catalog import task_prompt

    notes = []
    names = {"en": "English", "zh": "Chinese"}
    if guess in names and guess != spec.language:
        notes.append(f"captions look {names[guess]} but data.language is {spec.language!r}"
                     + (f": the default prompt is {names[spec.language]}; set data.language={guess}"
                        if spec.prompt is None else ""))
    if prompts:
        used = spec.prompt or task_prompt("caption", spec.language)
        text, n = prompts.most_common(1)[0]
        if text != used:
            notes.append(f"the file's prompt {text!r} ({n} rows) is not used: training asks {used!r} "
                         f"(set data.prompt to change it)")
    return notes


# ----------------------------------------------------------------------------- split and fingerprint
def _order(seed: int, ex_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{ex_id}".encode("utf-8", "surrogatepass")).digest()  # any file name


MIN_FOR_SPLIT = 2  # one image to train on, one to hold out


def eval_count(n: int, eval_fraction: float) -> int:
    if eval_fraction <= 0 or n < MIN_FOR_SPLIT:
        return 0
    return min(n - 1, max(1, round(n * eval_fraction)))


def split_examples(examples: list[Example], *, seed: int, eval_fraction: float, max_samples: int | None = None,
                   report: DataReport | None = None, held_out: set | None = None) -> tuple[list[Example], list[Example]]:
    """(train, eval): images ordered by sha256(seed, id) — so the same for any row order, replay or
    resume — then the first max_samples kept and the first eval_fraction of those held out.
    `held_out`: the images the file itself holds out (Karpathy test): they are the eval set."""
    ordered = sorted(examples, key=lambda e: _order(seed, e.id))
    if max_samples is not None and len(ordered) > max_samples:
        if report is not None:
            report.capped_from = len(ordered)
        ordered = ordered[:max_samples]
    if held_out is not None:
        return [e for e in ordered if e.image not in held_out], [e for e in ordered if e.image in held_out]
    k = eval_count(len(ordered), eval_fraction)
    return ordered[k:], ordered[:k]
