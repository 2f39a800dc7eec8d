"""tuning.cache_vision, decided without torch: memory, disk or off, and how much RAM the features take.

    mode, why = choose_mode("auto", frozen=True, visits=3.0, total_bytes=..., ram_bytes=...)
    estimated_bytes(recipe, hidden, pixels_per_token, precision, skip_quant, ram_bytes)   # the estimate's row

The training process decides with the data in hand (wizard.train.vision_cache, which holds the
cache itself); the memory estimate decides from the recipe alone. Both call these functions.
"""

from __future__ import annotations

from wizard.units import GiB, fmt_bytes

VISION_BUDGET_MAX = 4 * GiB  # auto: at most this much RAM for the features ...
VISION_BUDGET_SHARE = 8  # ... and at most 1/8 of the machine's RAM
MIN_VISITS = 2.0  # auto: each training image seen at least this often (on average) for the cache to pay


def vision_frozen(recipe, vision_names=("visual",)) -> bool:
    """The recipe leaves the vision tower frozen: freeze_vision, and no modules_to_save inside it."""
    if not recipe.tuning.freeze_vision:
        return False
    inside = (set(vision_names) - {"lm_head"}) | {"merger", "patch_embed", "blocks"}
    return not any(set(m.split(".")) & inside for m in recipe.tuning.lora.modules_to_save)


def budget(ram_bytes: int) -> int:
    return min(VISION_BUDGET_MAX, ram_bytes // VISION_BUDGET_SHARE)


def expected_visits(recipe, n_items: int, n_images: int, world: int = 1) -> float:
    """How often each training image is seen on average: epochs x captions per image, or max_steps' worth."""
    if n_images <= 0:
        return 0.0
    t = recipe.train
    samples = t.max_steps * t.batch_size * t.grad_accum * world if t.max_steps else t.epochs * n_items
    return samples / n_images


def image_tokens(size, min_pixels: int, max_pixels: int, pixels_per_token: int) -> int:
    """Tokens of one image of (w, h) after the processor's resize into [min_pixels, max_pixels]."""
    area = size[0] * size[1] if size else max_pixels
    return max(1, min(max_pixels, max(min_pixels, area)) // pixels_per_token)


def choose_mode(setting: str, *, frozen: bool, visits: float, total_bytes: int, ram_bytes: int) -> tuple[str, str]:
    """(off | memory | disk, why) for tuning.cache_vision = `setting`."""
    size = fmt_bytes(total_bytes)
    if setting == "off":
        return "off", "tuning.cache_vision=off"
    if not frozen:
        return "off", "the vision tower trains (freeze_vision off or modules_to_save inside it): features change"
    if setting in ("memory", "disk"):
        return setting, f"tuning.cache_vision={setting} ({size} of features)"
    if visits < MIN_VISITS:
        return "off", f"auto: each image is seen {visits:.1f} times on average (< {MIN_VISITS:g}): nothing to reuse"
    limit = budget(ram_bytes)
    if total_bytes > limit:
        return "off", (f"auto: the features take {size}, over the {fmt_bytes(limit)} budget; "
                       "set tuning.cache_vision=disk to keep them on disk")
    return "memory", f"auto: {size} of features in RAM, each image seen {visits:.1f} times on average"


def estimated_bytes(recipe, hidden: int, pixels_per_token: int, precision: str, skip_quant,
                    ram_bytes: int) -> tuple[int | None, str | None]:
    """For the memory estimate (no data read): (bytes the cache holds in RAM, or None; a note).
    Images are counted at data.max_pixels (a worst case); their number is data.max_samples'."""
    setting = getattr(recipe.tuning.cache_vision, "value", recipe.tuning.cache_vision)
    if setting in ("off", "disk") or not vision_frozen(recipe, skip_quant):
        return None, None
    per_image = image_tokens(None, recipe.data.min_pixels, recipe.data.max_pixels, pixels_per_token) * hidden * (
        4 if precision == "fp32" else 2)
    n = recipe.data.max_samples
    if setting == "auto":
        if recipe.train.max_steps or recipe.train.epochs < MIN_VISITS:
            return None, None  # one pass (or a step count): auto decides with the data, usually off
        if n is None or n * per_image > budget(ram_bytes):
            return None, (f"vision feature cache (tuning.cache_vision=auto): {fmt_bytes(per_image)} per training image "
                          f"in RAM when all fit in {fmt_bytes(budget(ram_bytes))}, else off")
    if n is None:
        return None, f"vision feature cache: {fmt_bytes(per_image)} per training image in RAM"
    n = max(1, int(n * (1 - recipe.data.eval_fraction)))
    return n * per_image, f"{n} images x {fmt_bytes(per_image)} of vision features (computed once, reused)"
