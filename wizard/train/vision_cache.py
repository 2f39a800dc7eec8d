"""Vision features computed once and reused every epoch (recipe key tuning.cache_vision).

    mode, why = choose_mode(...)      # the decision, torch-free: wizard.cache_vision
    cache = setup_vision_cache(recipe, lock, model, processor, captions, data, device)  # the backend
    # the collator adds "image_keys" to each batch; CaptionTrainer.compute_loss hands them over:
    with cache.batch(keys):
        model(**inputs)          # the frozen tower's forward returns stored features for known images

With a frozen vision tower (tuning.freeze_vision, nothing trainable inside it) and no image
augmentation (caption-wizard has none), an image's vision features - the merger's output, what
the language model sees at the image tokens - are the same every time the image is seen: in each
epoch, and for each of its captions. So they are computed the first time and looked up after.

  keys     an image's content digest (sha256, from the prepared data index) inside a namespace of
           everything else the features depend on: the model's files (sha256 from lock.json, or
           path + revision + file sizes), the image processor's settings (data.min/max_pixels,
           patch and merge sizes, normalisation), the tower's dtype, torch and transformers.
  dtype    stored as the tower computes them (the compute dtype: bf16/fp16 on GPUs, fp32 on the
           CPU), so a stored feature is exactly the computed one; in fp32 the losses and the adapter
           are bit-identical to the uncached path (tests/test_vision_cache.py). That holds as long as
           an image's features do not depend on the other images of its batch, which is true on the
           CPU (checked) and what the chunked tower (wizard/train/load.py) already assumes; a GPU may
           pick other kernels for other batch shapes (last-bit differences, as without the cache).
  memory   features kept in host RAM (on a GPU they are copied over per batch: ~1 MB per image).
  disk     one safetensors file per image under the caption-wizard cache
           (wizard.paths.cache_dir("vision"): $CAPTION_WIZARD_CACHE/vision, default
           ~/.cache/caption-wizard/vision)/NAMESPACE/, written atomically.
           There rather than in the run folder: the features depend on model, image and processor
           only, so another run on the same data and model (a learning-rate sweep, a resumed run)
           reads them instead of computing them. Delete the folder to reclaim the space.
  auto     memory when it pays: the tower is frozen, each training image is seen at least twice on
           average (epochs x captions per image), and all training images' features fit in
           VISION_BUDGET (an eighth of the RAM, at most 4 GiB); otherwise off. Never disk on its own
           (it may be tens of GiB), and never for an unfrozen tower.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wizard.cache_vision import choose_mode, expected_visits, image_tokens, vision_frozen


def cache_dir() -> Path:
    from wizard.paths import cache_dir as cache_folder

    return cache_folder("vision")


# ----------------------------------------------------------------------------- the cache
class VisionCache:
    """Features by image key, in RAM (mode memory) or in one file per image (mode disk)."""

    def __init__(self, mode: str, namespace: str = "", folder: Path | None = None):
        self.mode = mode
        self.folder = (folder or cache_dir()) / namespace if mode == "disk" else None
        self._memory: dict[str, Any] = {}
        self._keys: list | None = None
        self._tensor_output: bool | None = None  # the tower returns a tensor (older transformers) or a ModelOutput
        self.hits = self.computed = 0

    @contextmanager
    def batch(self, keys):
        """The image keys of the batch the model is about to see (in the order of its pixel_values)."""
        self._keys = list(keys) if keys is not None else None
        try:
            yield
        finally:
            self._keys = None

    def get(self, key: str):
        if self.mode == "memory":
            return self._memory.get(key)
        path = self.folder / f"{key}.safetensors"
        if not path.is_file():
            return None
        from safetensors.torch import load_file

        try:
            return load_file(path)["features"]
        except Exception:  # noqa: BLE001 - a damaged file (a full disk): compute again
            return None

    def put(self, key: str, features) -> None:
        features = features.detach().to("cpu", copy=True)  # its own storage, not a view of the batch's
        if self.mode == "memory":
            self._memory[key] = features
            return
        from safetensors.torch import save

        from wizard.fsutil import atomic_write_bytes

        try:
            atomic_write_bytes(self.folder / f"{key}.safetensors", save({"features": features}))
        except OSError:  # a read-only or full disk: the run goes on, computing what it cannot store
            pass

    def wrap(self, forward):
        """The tower's forward (already under no_grad, in chunks): known images looked up, the others
        computed together in one call (the uncached path's computation) and stored."""
        def cached(hidden_states, grid_thw, **kwargs):
            keys = self._keys
            if keys is None or len(keys) != len(grid_thw):
                return forward(hidden_states, grid_thw, **kwargs)
            import torch

            found = [self.get(k) for k in keys]
            first = {}  # an image twice in the batch (two of its captions): computed once
            for i, f in enumerate(found):
                if f is None:
                    first.setdefault(keys[i], i)
            todo = list(first.values())
            if todo:
                patches = grid_thw.prod(dim=-1).tolist()
                starts = [0]
                for n in patches:
                    starts.append(starts[-1] + n)
                rows = hidden_states if len(todo) == len(keys) else torch.cat(
                    [hidden_states[starts[i]:starts[i + 1]] for i in todo])
                out = forward(rows, grid_thw[todo], **kwargs)
                self._tensor_output = torch.is_tensor(out)
                merged = out if self._tensor_output else out.pooler_output
                tokens = [patches[i] * merged.shape[0] // sum(patches[j] for j in todo) for i in todo]
                computed = dict(zip((keys[i] for i in todo), merged.split(tokens)))
                for key, part in computed.items():
                    self.put(key, part)
                found = [computed[k] if f is None else f for k, f in zip(keys, found)]
                self.computed += len(todo)
            self.hits += len(keys) - len(todo)
            device = hidden_states.device
            features = torch.cat([f.to(device, non_blocking=True) for f in found])
            if self._tensor_output:
                return features
            from transformers.modeling_outputs import BaseModelOutputWithPooling

            return BaseModelOutputWithPooling(last_hidden_state=None, pooler_output=features)

        return cached


def attach(model, cache: VisionCache, skip_quant) -> bool:
    """Route the frozen vision tower's forward through `cache`. False (nothing attached) when the
    tower has trainable parameters or is not the no-grad frozen tower of wizard/train/load.py."""
    from wizard.model import vision_module_names

    attached = False
    for name in vision_module_names(model, skip_quant):
        module = model.get_submodule(name)
        if not getattr(module, "_wizard_no_grad", False) or any(p.requires_grad for p in module.parameters()):
            return False
        module.forward = cache.wrap(module.forward)
        module._wizard_cache = cache
        attached = True
    return attached


def find_cache(model) -> VisionCache | None:
    for module in model.modules():
        cache = getattr(module, "_wizard_cache", None)
        if cache is not None:
            return cache
    return None


# ----------------------------------------------------------------------------- the namespace
def namespace(model_facts: dict, processor, dtype: str) -> str:
    """24 hex digits over everything but the image that the features depend on."""
    import torch
    import transformers

    proc = getattr(processor, "image_processor", processor)
    raw = proc.to_dict() if hasattr(proc, "to_dict") else {}
    skip = ("processor_class", "auto_map")
    settings = {k: v for k, v in sorted(raw.items()) if not k.startswith("_") and k not in skip}
    facts = {"model": model_facts, "processor": settings, "dtype": dtype,
             "torch": torch.__version__, "transformers": transformers.__version__}
    blob = json.dumps(facts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:24]


def model_facts(lock: dict, path) -> dict:
    """The model's identity: the lock's per-file sha256 when the runner recorded them, else the
    folder, revision and each weight file's size and mtime (a changed file changes the key)."""
    model = lock.get("model") or {}
    if model.get("files"):
        return {"files": model["files"], "revision": model.get("revision")}
    folder = Path(path)
    files = {f.name: [f.stat().st_size, int(f.stat().st_mtime)] for f in sorted(folder.glob("*"))
             if f.suffix in (".safetensors", ".bin", ".json")}
    return {"path": str(folder.resolve()), "revision": model.get("revision"), "files": files}


# ----------------------------------------------------------------------------- the backend's one call
def setup_vision_cache(recipe, lock: dict, model, processor, captions, data, device: str, *, world: int = 1,
                       ram_bytes: int | None = None) -> tuple[VisionCache | None, str]:
    """Decide tuning.cache_vision for this run, attach the cache, give the datasets their image keys.
    Returns (cache or None, a line for train.log)."""
    from wizard.catalog import model_info
    from wizard.model import resolve_precision

    setting = getattr(recipe.tuning.cache_vision, "value", recipe.tuning.cache_vision)
    info = model_info(recipe.model.id)
    train = data.train
    examples = train.images.examples
    keys = [captions.digests.get(ex.id) for ex in examples]
    if setting == "off":
        return None, "vision features: computed every step (tuning.cache_vision=off)"
    if not all(keys):
        return None, "vision features: computed every step (the data has no image digests)"
    proc = processor.image_processor
    per_token = (getattr(proc, "patch_size", 14) * getattr(proc, "merge_size", 2)) ** 2
    width = getattr(getattr(model.config, "text_config", model.config), "hidden_size", 0)
    precision = resolve_precision(recipe.train.precision, device)
    nbytes = {"fp32": 4}.get(precision, 2)
    total = sum(image_tokens(captions.sizes.get(ex.id), recipe.data.min_pixels, recipe.data.max_pixels, per_token)
                for ex in examples) * width * nbytes
    if ram_bytes is None:
        from wizard.machine import _ram_bytes

        ram_bytes = _ram_bytes()
    visits = expected_visits(recipe, len(train), len(examples), world)
    mode, why = choose_mode(setting, frozen=vision_frozen(recipe, info.skip_quant), visits=visits,
                            total_bytes=total, ram_bytes=ram_bytes)
    if mode == "off":
        return None, f"vision features: computed every step ({why})"
    path = (lock.get("model") or {}).get("path") or getattr(model, "name_or_path", "") or "."
    ns = namespace(model_facts(lock, path), processor, precision) if mode == "disk" else ""
    cache = VisionCache(mode, ns)
    if not attach(model, cache, info.skip_quant):
        return None, "vision features: computed every step (the vision tower has trainable parameters)"
    train.images.keys = keys
    held_out = [captions.digests.get(ex.id) for ex in data.eval.images.examples] if data.eval is not None else []
    if held_out and all(held_out):  # the eval loss sees the same images at every evaluation
        data.eval.images.keys = held_out
    where = f" in {cache.folder}" if mode == "disk" else ""
    return cache, f"vision features: computed once, reused{where} ({why})"
