"""Captions for images: `caption-wizard caption RUN_DIR_OR_MODEL IMAGE_OR_FOLDER...` (wizard.commands.caption prints them).

    caption-wizard caption runs/demo-shapes-20250101-120000 photos/ cat.jpg
    caption-wizard caption demo/tiny-qwen2-vl-shapes img.png --num-beams 3 --json
    caption-wizard caption runs/... photos/ --out captions.jsonl

Generation settings come from the run's recipe (defaults for a bare model); each flag overrides one.
Folders expand to the images directly inside them, sorted by name. An image that cannot be read is
reported by name and skipped: exit 0 if anything was captioned, 2 if nothing was.
"""

from __future__ import annotations

from pathlib import Path

from wizard.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GENERATION_FLAGS = ("num_beams", "temperature", "repetition_penalty", "max_new_tokens", "do_sample")


def expand_images(paths) -> list[tuple[Path, str | None]]:
    """[(path, error or None)]: folders become their images (sorted); missing paths carry an error."""
    out: list[tuple[Path, str | None]] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(c for c in p.iterdir() if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                out.append((p, "folder holds no images (" + ", ".join(sorted(IMAGE_SUFFIXES)) + ")"))
            out.extend((c, None) for c in found)
        elif p.is_file():
            out.append((p, None))
        else:
            from wizard.fsnames import find_normalized

            found = find_normalized(p)  # café.png typed (NFC) for cafe\u0301.png on disk (NFD), or back
            out.append((found, None) if found is not None and found.is_file() else (p, "no such file or folder"))
    return out


# Larger images are shrunk while decoding: the processor resizes every image to at most its
# max_pixels (12.8 MP for Qwen2-VL's own default), and on the way makes float copies of what it
# gets, so a 144-megapixel photo tripled the peak memory for nothing.
MAX_DECODE_PIXELS = 4096 * 4096


def read_image(path: Path, max_pixels: int = MAX_DECODE_PIXELS):
    """The image as PIL RGB, fully decoded (so a truncated file fails here, not inside the model), by
    the rules training uses (wizard.images: EXIF orientation, 16-bit, transparency), at most
    `max_pixels` large (JPEG: decoded at a reduced scale, draft mode; others: reduced at once)."""
    from wizard.images import load_rgb

    return load_rgb(path, shrink_to=max_pixels)


def check_source(source) -> None:
    """`caption runs/nope ...`: a path-like source that does not exist is a missing folder, not a hub id."""
    from wizard.rundir import default_runs_dir

    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        return
    parent = path.parent
    if parent != Path(".") and (parent.is_dir() or parent == default_runs_dir()):
        raise UserError(f"{text}: no such folder" + (f" (nothing named {path.name} in {parent}/)"
                                                     if parent.is_dir() else ""),
                        hint="list runs with: caption-wizard runs (a ModelScope id like Owner/Name is "
                             f"looked up only when no folder {parent}/ exists here)")


def generation_with(base, overrides: dict):
    """The GenerationSpec `base` with the given (non-None) fields replaced and validated.

    A temperature without do_sample turns sampling on: otherwise the temperature would be ignored.
    """
    from pydantic import ValidationError

    from wizard.recipe import GenerationSpec

    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - set(GENERATION_FLAGS)
    if unknown:
        raise UserError(f"unknown generation setting(s): {', '.join(sorted(unknown))}",
                        hint="settable: " + ", ".join(GENERATION_FLAGS))
    if "temperature" in changes and "do_sample" not in changes:
        changes["do_sample"] = True
    try:
        return GenerationSpec.model_validate({**base.model_dump(), **changes})
    except ValidationError as e:
        err = e.errors()[0]
        flag = "--" + str(err["loc"][0]).replace("_", "-")
        raise UserError(f"{flag} {err.get('input')!r}: {err['msg']}") from None


def caption_images(source, paths, *, prompt: str | None = None, batch_size: int = 8, captioner=None,
                   progress=None, on_batch=None, **gen_overrides) -> list[tuple[Path, str | None, str | None]]:
    """Caption images (or folders of them) with a run, an export, a model folder or a model id.

    Returns [(path, caption, None)] for each captioned image and [(path, None, error)] for each one
    that could not be read, in input order. `gen_overrides`: num_beams, temperature,
    repetition_penalty, max_new_tokens, do_sample (None = the source's own setting).
    Images are decoded one batch at a time; the model loads only once a readable image turns up.
    progress (wizard.progress): shown while the model loads; on_batch: called as on_batch(images_done,
    images_total) after each batch.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be at least 1")
    if captioner is None:
        check_source(source)
    from wizard.recipe import GenerationSpec

    generation_with(GenerationSpec(), gen_overrides)  # bad flag values fail before the model loads
    expanded = expand_images(paths)
    results: list[tuple[Path, str | None, str | None]] = []
    pending: list[tuple[int, object]] = []  # (index in results, decoded image)
    state = {"captioner": captioner, "generation": None}

    def caption_pending() -> None:
        if state["captioner"] is None:
            from wizard.inference import load_captioner

            state["captioner"] = load_captioner(source, progress=progress)
        cap = state["captioner"]
        state["generation"] = state["generation"] or generation_with(cap.generation, gen_overrides)
        captions = cap.caption([im for _, im in pending], state["generation"], prompt, batch_size=batch_size)
        for (i, _), caption in zip(pending, captions):
            results[i] = (results[i][0], caption, None)
        pending.clear()
        if on_batch is not None:
            on_batch(len(results), len(expanded))

    for path, error in expanded:
        if error is None:
            try:
                pending.append((len(results), read_image(path)))
            except Exception as e:  # PIL raises many kinds (UnidentifiedImageError, OSError, ...)
                error = f"cannot read image ({e})".replace(str(path), path.name)
        results.append((path, None, error))
        if len(pending) >= batch_size:
            caption_pending()
    if pending:
        caption_pending()
    return results
