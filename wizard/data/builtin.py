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
# The set is a fixed thing, like any dataset: train.seed picks the split, not the pictures.
SHAPES_SEED = 0


def read_shapes(n: int | None, language: str) -> ReadResult:
    from wizard.demo.shapes import make_shapes

    n = n or SHAPES_COUNT
    rows = [Row(f"shapes #{i}", image=s.image, captions=list(s.captions(language)), id=f"shape-{i:05d}")
            for i, s in enumerate(make_shapes(n, seed=SHAPES_SEED))]
    return ReadResult(rows, Path("shapes"), None,
                      [f"synthetic shapes: {n} images drawn with seed {SHAPES_SEED}, {language} captions"])


def read_modelscope(fmt: str, dataset: str, subset: str | None, local: Path | None, console=None) -> ReadResult:
    """m3it / coco_csv: download (or reuse) the files with wizard.hub, parse them with
    wizard.data.modelscope_sets. `local`: an existing folder, used as is (no download)."""
    from wizard.data import modelscope_sets

    if local is not None:
        folder = local
    else:
        from wizard.hub import resolve_dataset

        folder = Path(resolve_dataset(dataset, subset, None, console))
    if fmt == "m3it":
        records = modelscope_sets.read_m3it(folder, subset, "train")
    else:
        records = modelscope_sets.read_coco_2014_caption(folder)
    rows = [_adapt(rec, i, fmt, folder) for i, rec in enumerate(records)]
    return ReadResult(rows, folder, folder, [])


def _field(rec: Any, *names: str) -> Any:
    for n in names:
        value = rec.get(n) if isinstance(rec, dict) else getattr(rec, n, None)
        if value is not None:
            return value
    return None


def _adapt(rec: Any, i: int, fmt: str, folder: Path) -> Row:
    """One record of modelscope_sets (a dict, or an object with attributes) as a Row."""
    where = _field(rec, "where") or f"{fmt} record {i}"
    row = Row(str(where), name=_field(rec, "name", "file_name"))
    problem = _field(rec, "problem", "error", "reason")
    if problem:
        row.problem = str(problem)
        return row
    # Only an image id is a stable id (several captions of one image share it); without one the
    # loader names the image by its content digest.
    ident = _field(rec, "image_id")
    row.id = str(ident) if ident is not None else None
    row.captions = caption_values(_field(rec, "captions", "caption", "outputs", "text"))
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
