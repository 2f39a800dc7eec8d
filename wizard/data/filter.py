"""data.filter: drop caption pairs CLIP finds unrelated, images too small, and near-duplicate images.

    data:
      filter: {clip_min: 0.2, min_side: 224, dedupe: true}

    examples = apply_filter(examples, digests, recipe.data, report, progress)   # in load_caption_set

Applied after the rows are checked and before the split, so training, eval and `caption-wizard data`
see the same filtered set. What it dropped goes into the DataReport (counts and a few examples).

- min_side: images whose shorter side is below it are dropped (read from the image header).
- dedupe: images with the same perceptual hash (imagehash.phash: the same picture resized,
  re-encoded or lightly edited) are merged into the first one; their captions are pooled, so no
  picture sits in both the training and the held-out split.
- clip_min: each (image, caption) pair is scored by the cosine similarity of CLIP's image and text
  embeddings (the seed article keeps pairs >= 0.2); captions below are dropped, and an image with no
  caption left is dropped. The CLIP model comes from ModelScope like any model (data.filter.clip_model;
  default an English CLIP, Chinese-CLIP for data.language zh). Scores are computed once, with a progress
  bar, and cached per data fingerprint and CLIP model in wizard.paths.cache_dir("filter")
  (~/.cache/caption-wizard/filter/ by default).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from wizard.errors import UserError

# Defaults for data.filter.clip_model (ModelScope ids; not downloadable from this sandbox, so unverified
# here: set clip_model to the id or local folder you use).
CLIP_MODELS = {"en": "openai-mirror/clip-vit-base-patch32", "zh": "AI-ModelScope/chinese-clip-vit-base-patch16"}
SHOW = 3  # examples of each kind of drop in the report
CLIP_BATCH = 32


def cache_dir() -> Path:
    from wizard.paths import cache_dir as cache_folder

    return cache_folder("filter")


def is_active(spec) -> bool:
    f = getattr(spec, "filter", None)
    return f is not None and (f.clip_min is not None or f.min_side is not None or f.dedupe)


def apply_filter(examples: list, digests: dict[str, str], spec, report, progress=None) -> list:
    """The examples data.filter keeps (a new list; examples with dropped captions are copies)."""
    f = spec.filter
    if f.min_side is not None:
        examples = _min_side(examples, f.min_side, report)
    if f.dedupe:
        examples = _dedupe(examples, digests, report)
    if f.clip_min is not None:
        examples = _clip(examples, digests, spec, report, progress)
    if not examples:
        raise UserError("data.filter dropped every image", hint="lower data.filter.clip_min or data.filter.min_side")
    return examples


def _note(report, line: str, samples: list[str]) -> None:
    report.info.append(line)
    report.info.extend(f"  e.g. {s}" for s in samples[:SHOW])


def _min_side(examples: list, min_side: int, report) -> list:
    from wizard.data.examples import load_image
    from wizard.images import open_image, oriented_size

    kept, dropped = [], []
    for ex in examples:
        src = ex.image
        if isinstance(src, (str, Path)):
            with open_image(src) as im:  # the header is enough (checked images: no ImageProblem)
                size = oriented_size(im)
        else:
            size = load_image(ex).size
        (kept if min(size) >= min_side else dropped).append((ex, size))
    if dropped:
        _note(report, f"data.filter.min_side {min_side}: dropped {len(dropped)} image(s) with a shorter side "
                      f"below {min_side} px", [f"{ex.id} ({w}x{h})" for ex, (w, h) in dropped])
    return [ex for ex, _ in kept]


def _dedupe(examples: list, digests: dict[str, str], report) -> list:
    import imagehash

    from wizard.data.examples import load_image

    first: dict[str, object] = {}
    merged = []
    for ex in examples:
        key = str(imagehash.phash(load_image(ex)))
        keep = first.get(key)
        if keep is None:
            first[key] = _copy(ex)
            continue
        keep.captions.extend(c for c in ex.captions if c not in keep.captions)
        merged.append(f"{ex.id} = {keep.id}")
    if merged:
        _note(report, f"data.filter.dedupe: merged {len(merged)} near-duplicate image(s) (same perceptual hash) "
                      "into their first copy, captions pooled", merged)
    return list(first.values())


def _copy(ex):
    import dataclasses

    return dataclasses.replace(ex, captions=list(ex.captions))


# ----------------------------------------------------------------------------- CLIP
def clip_model_id(spec) -> str:
    return spec.filter.clip_model or CLIP_MODELS[spec.language]


def _clip(examples: list, digests: dict[str, str], spec, report, progress) -> list:
    threshold = spec.filter.clip_min
    scores = clip_scores(examples, digests, spec, progress)
    kept, dropped_captions, dropped_images = [], [], 0
    for ex in examples:
        keep = [c for c in ex.captions if scores[_key(digests, ex, c)] >= threshold]
        for c in ex.captions:
            if c not in keep:
                dropped_captions.append(f"{ex.id}: {c!r} (CLIP {scores[_key(digests, ex, c)]:.3f})")
        if keep:
            kept.append(ex if len(keep) == len(ex.captions) else _with(ex, keep))
        else:
            dropped_images += 1
    if dropped_captions:
        _note(report, f"data.filter.clip_min {threshold}: dropped {len(dropped_captions)} caption(s) scored below "
                      f"it by {clip_model_id(spec)} ({dropped_images} image(s) had none left)", dropped_captions)
    return kept


def _with(ex, captions):
    import dataclasses

    return dataclasses.replace(ex, captions=captions)


def _key(digests: dict[str, str], ex, caption: str) -> str:
    return hashlib.sha256(f"{digests.get(ex.id, ex.id)}\x00{caption}".encode("utf-8", "surrogatepass")).hexdigest()[:24]


def clip_scores(examples: list, digests: dict[str, str], spec, progress=None) -> dict[str, float]:
    """{pair key: cosine similarity} for every (image, caption) pair, from the cache where it has them."""
    from wizard.data.examples import fingerprint
    from wizard.fsutil import atomic_write_json

    model_id = clip_model_id(spec)
    slug = hashlib.sha256(model_id.encode()).hexdigest()[:12]
    path = cache_dir() / f"{fingerprint(examples, digests)[:24]}-{slug}.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))["scores"]
    except (OSError, ValueError, KeyError, TypeError):
        cached = {}
    todo = [(ex, c) for ex in examples for c in ex.captions if _key(digests, ex, c) not in cached]
    if todo:
        cached.update(_score(todo, digests, model_id, progress))
        atomic_write_json(path, {"clip_model": model_id, "scores": cached})
    return cached


def _score(pairs: list, digests: dict[str, str], model_id: str, progress) -> dict[str, float]:
    import torch

    from wizard.data.examples import load_image
    from wizard.progress import as_progress

    model, processor = load_clip(model_id, progress)
    out: dict[str, float] = {}
    with as_progress(progress).bar("CLIP scores", total=len(pairs)) as advance, torch.inference_mode():
        for start in range(0, len(pairs), CLIP_BATCH):
            chunk = pairs[start:start + CLIP_BATCH]
            inputs = processor(text=[c for _, c in chunk], images=[load_image(ex) for ex, _ in chunk],
                               return_tensors="pt", padding=True, truncation=True)
            image = model.get_image_features(pixel_values=inputs["pixel_values"])
            text = model.get_text_features(**{k: v for k, v in inputs.items() if k != "pixel_values"})
            image, text = _tensor(image), _tensor(text)
            sims = torch.nn.functional.cosine_similarity(image, text, dim=-1)
            for (ex, c), s in zip(chunk, sims.tolist()):
                out[_key(digests, ex, c)] = round(float(s), 5)
            advance(len(chunk))
    return out


def _tensor(features):
    """get_*_features returns a tensor, or (newer transformers) an output object holding it."""
    if hasattr(features, "pooler_output"):
        return features.pooler_output
    return features


def load_clip(model_id: str, progress=None):
    """(model, processor) of a CLIP or Chinese-CLIP model: a local folder or a ModelScope id (downloaded)."""
    from transformers import AutoModel, AutoProcessor

    from wizard.hub import resolve_model
    from wizard.progress import downloads_of

    local = Path(model_id).expanduser()
    spec = {"id": model_id, "source": "local" if local.is_dir() else "modelscope"}
    folder = resolve_model(spec, progress=downloads_of(progress)).path
    model = AutoModel.from_pretrained(str(folder))
    if not hasattr(model, "get_image_features"):
        raise UserError(f"data.filter.clip_model {model_id}: not a CLIP model ({type(model).__name__})",
                        hint=f"e.g. {CLIP_MODELS['en']} (English) or {CLIP_MODELS['zh']} (Chinese)")
    model.eval()
    return model, AutoProcessor.from_pretrained(str(folder))
