"""(e) the built-in synthetic shapes set and (f) the ModelScope caption sets.

Both come from other modules (wizard.demo.shapes; wizard.hub + wizard.data.modelscope_sets),
imported only when used; this file adapts what they return to `Row`s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wizard.data.adapters import ReadResult, Row, caption_values
from wizard.data.examples import RowProblem, image_from_string

SHAPES_COUNT = 512  # images when data.max_samples is not set
# The set is a fixed thing, like any dataset: train.seed picks the split, not the pictures. The
# demo base model trained on seed 0 and held out seed 1 (tools/build_demo_base.py), so these
# pictures are new to it.
SHAPES_SEED = 2


def read_shapes(n: int | None, language: str) -> ReadResult:
    from wizard.demo.shapes import make_shapes

    n = n or SHAPES_COUNT
    rows = [Row(f"shapes #{i}", image=s.image, captions=list(s.captions(language)), id=f"shape-{i:05d}")
            for i, s in enumerate(make_shapes(n, seed=SHAPES_SEED))]
    return ReadResult(rows, Path("shapes"), None,
                      info=[f"synthetic shapes: {n} images drawn with seed {SHAPES_SEED}, {language} captions"])


def read_modelscope(fmt: str, spec, local: Path | None, progress=None) -> ReadResult:
    """m3it / coco_csv: download (or reuse) the files with wizard.hub, read them with
    wizard.data.modelscope_sets. `local`: an existing folder, read as is (no download).

    The readers merge the rows of one image, skip bad ones (counted in `.skipped`, the first few
    named in `.problems`) and stop after max_samples images in file order (so a capped COCO
    download fetches only what it needs). For coco_csv, data.subset picks the split (train or
    validation)."""
    from wizard.data import modelscope_sets

    folder = local
    if folder is None:
        from wizard.hub import resolve_dataset
        from wizard.progress import downloads_of

        folder = Path(resolve_dataset(spec.dataset, spec.subset if fmt == "m3it" else None, None,
                                      progress=downloads_of(progress)))
    if fmt == "m3it":
        split, subset = "train", spec.subset or _only_subset(folder)
        records = modelscope_sets.read_m3it(folder, subset, split, max_samples=spec.max_samples)
        file = modelscope_sets.m3it_file(folder, subset, split)
    else:
        split = spec.subset or "train"
        records = modelscope_sets.read_coco_2014_caption(folder, split, max_samples=spec.max_samples)
        file = modelscope_sets.coco_csv_file(folder, split)
    rows = [_adapt(rec, f"{file.name} image {i}", folder) for i, rec in enumerate(records)]
    problems = list(getattr(records, "problems", []))
    skipped = max(int(getattr(records, "skipped", 0) or 0), len(problems))
    rows[:0] = [_problem_row(p, file.name) for p in problems]  # the readers only name the first few
    rows[len(problems):len(problems)] = [Row(file.name, problem="skipped by the reader")] * (skipped - len(problems))
    return ReadResult(rows, file, folder, info=[f"read {file.relative_to(folder)} with modelscope_sets"])


def _only_subset(folder: Path) -> str:
    """data.subset left empty: the one subset in a local M3IT copy."""
    from wizard.errors import UserError

    root = folder / "data" / "captioning"
    found = sorted(d.name for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
    if len(found) != 1:
        raise UserError(f"data.subset is needed for the M3IT copy in {folder}"
                        + (f" (it holds {', '.join(found)})" if found else ""),
                        hint="e.g. data.subset=coco-cn (Chinese) or flickr8k-cn")
    return found[0]


# The readers' words for a skipped row -> the loader's (so reports count them together).
_REASONS = {"bad JSON": "not valid JSON", "no caption": "empty caption", "no usable image": "not a readable image",
            "image bytes do not decode": "not a readable image", "not an image": "not a readable image"}


def _problem_row(problem: str, file_name: str) -> Row:
    """"line 7: bad JSON" -> Row("train.jsonl:7", problem="not valid JSON");
    "URL_OR_PATH: error" (coco_csv) -> Row("train2014.csv", problem="image not fetched: URL_OR_PATH (error)")."""
    where, sep, why = str(problem).partition(": ")
    if where.startswith("line ") and where[5:].isdigit():
        return Row(f"{file_name}:{where[5:]}", problem=_REASONS.get(why, why))
    if not sep:
        return Row(file_name, problem=str(problem))
    if why in _REASONS:
        return Row(file_name, problem=f"{_REASONS[why]}: {where}")
    return Row(file_name, problem=f"image not fetched: {where} ({why})")


def _field(rec: Any, *names: str) -> Any:
    for n in names:
        value = rec.get(n) if isinstance(rec, dict) else getattr(rec, n, None)
        if value is not None:
            return value
    return None


def _adapt(rec: Any, where: str, folder: Path) -> Row:
    """One record (a CaptionRecord(image, captions), a dict or an object) as a Row. No id: the
    loader names embedded images by their content digest, the same on every machine."""
    row = Row(where, captions=caption_values(_field(rec, "captions", "caption", "outputs", "text")))
    image = _field(rec, "image", "image_bytes", "image_base64_str", "images", "image_path", "path")
    try:
        if isinstance(image, (list, tuple)):
            if len(image) != 1:
                raise RowProblem("no image" if not image else f"{len(image)} images (a caption example has one)")
            image = image[0]
        if image is None:
            raise RowProblem("no image")
        row.image = image_from_string(image, folder) if isinstance(image, str) else image
    except RowProblem as e:
        row.problem = str(e)
    return row
