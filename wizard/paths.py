"""Where caption-wizard keeps what it can rebuild: one decision, one override.

    cache_dir("images")     # fetched image URLs: $CAPTION_WIZARD_CACHE/images, else ~/.cache/caption-wizard/images
    download_root()         # model and dataset downloads, in the ModelScope cache layout

CAPTION_WIZARD_CACHE moves every cache the tool writes: its own caches (the folders in KINDS) and,
under its modelscope/ folder, the model and dataset downloads. Without it, our caches go to
$XDG_CACHE_HOME/caption-wizard (default ~/.cache/caption-wizard) and downloads to $MODELSCOPE_CACHE
(default ~/.cache/modelscope), a cache shared with the other ModelScope tools.

The variables are read on every call (tests and users change them between calls). Deleting any of
these folders costs time only: the next run downloads, checks or computes again.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CAPTION_WIZARD_CACHE"
DOWNLOAD_ENV = "MODELSCOPE_CACHE"

# cache_dir(kind): what each folder of the cache holds
KINDS = {
    "data": "data indexes (verified examples by fingerprint) and tokenized captions: wizard/data/prepare.py",
    "vision": "vision features, tuning.cache_vision=disk: wizard/train/vision_cache.py",
    "filter": "CLIP scores by data fingerprint and CLIP model: wizard/data/filter.py",
    "images": "images fetched from URLs in caption files, one file per URL: wizard/data/urls.py",
    "webdataset": "unpacked WebDataset shards, one folder per shard: wizard/data/webdataset.py",
    "metrics": "jieba's dictionary cache for Chinese metrics: wizard/metrics.py",
}


def cache_root() -> Path:
    """The tool's own caches: $CAPTION_WIZARD_CACHE, else $XDG_CACHE_HOME/caption-wizard, else ~/.cache/caption-wizard."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "caption-wizard"


def cache_dir(kind: str) -> Path:
    """One cache folder (a key of KINDS) under cache_root(); not created here."""
    if kind not in KINDS:
        raise ValueError(f"unknown cache kind {kind!r}; one of {', '.join(KINDS)}")
    return cache_root() / kind


def download_root() -> Path:
    """Model and dataset downloads: $CAPTION_WIZARD_CACHE/modelscope, else $MODELSCOPE_CACHE, else ~/.cache/modelscope."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser() / "modelscope"
    shared = os.environ.get(DOWNLOAD_ENV, "").strip()
    return Path(shared).expanduser() if shared else Path.home() / ".cache" / "modelscope"


def download_root_setting() -> str:
    """The variable that decides download_root() now, for hints ("point X at a bigger disk")."""
    if os.environ.get(CACHE_ENV, "").strip():
        return CACHE_ENV
    return f"{DOWNLOAD_ENV} (downloads only) or {CACHE_ENV} (every cache)"
