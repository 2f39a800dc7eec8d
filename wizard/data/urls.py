"""Image URLs in caption files (ms-swift allows them): downloaded once into a cache folder.

    result = fetch_images(result, progress)   # rows whose image is an http(s) URL get the cached file

The cache is wizard.paths.cache_dir("images") ($CAPTION_WIZARD_CACHE/images, default
~/.cache/caption-wizard/images), one file per URL named by the sha256 of the URL, so a
second run downloads nothing. Downloads run in parallel threads with a progress bar. A URL that
cannot be fetched is skipped and counted like any bad row ("image not fetched: URL (why)"), and is
tried again on the next run.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wizard.data.adapters import ReadResult
from wizard.data.examples import ImageUrl
from wizard.paths import cache_dir

WORKERS = 16  # parallel requests: image hosts answer slowly, not heavily
TIMEOUT = 20.0  # seconds per request


def cached_path(cache: Path, url: str) -> Path:
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
    return cache / digest[:2] / digest


def fetch_images(result: ReadResult, progress=None, *, workers: int = WORKERS, timeout: float = TIMEOUT) -> ReadResult:
    """Replace every ImageUrl image of `result` by its cached file (downloading what is missing)."""
    todo: dict[str, list] = {}
    for row in result.rows:
        if row.problem is None and isinstance(row.image, ImageUrl):
            todo.setdefault(str(row.image), []).append(row)
    if not todo:
        return result
    cache = cache_dir("images")
    missing = [u for u in todo if not cached_path(cache, u).is_file()]
    errors = _download_all(missing, cache, progress, workers, timeout) if missing else {}
    for url, rows in todo.items():
        for row in rows:
            row.id = row.id or url  # the URL names the example: the same on every machine
            if url in errors:
                row.image, row.problem = None, f"image not fetched: {url} ({errors[url]})"
            else:
                row.image = cached_path(cache, url)
    if result.held_out:  # a file's own split named the URLs: name the cached files instead
        result.held_out = {cached_path(cache, str(im)) if isinstance(im, ImageUrl) else im for im in result.held_out}
    fetched = len(missing) - len(errors)
    result.info.append(f"{len(todo):,} image URLs: {fetched:,} downloaded, {len(todo) - len(missing):,} already "
                       f"in {cache}" + (f", {len(errors):,} could not be fetched" if errors else ""))
    return result


def _download_all(urls: list[str], cache: Path, progress, workers: int, timeout: float) -> dict[str, str]:
    from wizard.progress import as_progress

    errors: dict[str, str] = {}
    with as_progress(progress).bar("downloading images", total=len(urls)) as advance, \
            ThreadPoolExecutor(max_workers=max(1, min(workers, len(urls)))) as pool:
        for url, error in pool.map(lambda u: (u, _download(u, cached_path(cache, u), timeout)), urls):
            if error:
                errors[url] = error
            advance(1)
    return errors


def _download(url: str, dest: Path, timeout: float) -> str | None:
    """None when `dest` holds the URL's bytes; else why not (short, for the bad-row list)."""
    import urllib.error
    import urllib.request

    try:
        req = urllib.request.Request(url, headers={"User-Agent": "caption-wizard"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = resp.read()
        if not data:
            return "empty reply"
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)  # atomic: a killed run never leaves half an image under the final name
        return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except Exception as e:  # any failure of one image: skip it, count it
        reason = getattr(e, "reason", None) or e
        return " ".join(str(reason).split())[:120] or type(e).__name__
