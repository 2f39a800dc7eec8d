"""Data preparation in the front end: read, verify (in parallel) and index the data once, cached.

    prepared = prepare_data(recipe.data, seed=recipe.train.seed, base_dir=recipe_dir)
    prepared.captions          # the CaptionSet (train / eval / report / fingerprint)
    prepared.index             # the verified index on disk: the training process reads this
    read_prepared(prepared.index, recipe.data, seed=...)   # -> the same CaptionSet, no image opened

`caption-wizard run` prepares the data before the run folder exists (bad data: exit 2, no run
folder) and before the training process starts; that process reads the index instead of reading
and verifying again.

The index of one source (the file or folder, its format and the data settings that change which
rows are read) lives in CACHE/data/<key>.json: the size and stat of the data files the rows came
from; per image file its path (relative to the data's folder), size, mtime_ns, sha256 and verdict
(the reason it is bad, or its width and height); image paths that could not be read; and the
verified examples (id, image file, captions) before the split. A second preparation of the same data:
  - when the data files and every image file have the same size and mtime, and no missing image
    has appeared, takes the examples from the index: no row is read, no image opened (50k images:
    about a second, mostly parsing the index and one stat per image);
  - otherwise reads the rows; an image whose (size, mtime) match uses its recorded verdict; the
    others (and embedded image bytes) are read and hashed, and only content never seen before is
    decoded. So a copied or touched dataset is re-hashed, not re-decoded, and the fingerprint is
    always over the content digests.
CACHE is wizard.paths.cache_dir("data"): $CAPTION_WIZARD_CACHE/data, default ~/.cache/caption-wizard/data.
Deleting it costs one re-check.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from wizard.data.detect import locate
from wizard.data.examples import BadRow, CaptionSet, DataReport, Example, inspect_image_bytes
from wizard.data.load import Check, check_parallel, check_source, finish_caption_set, load_caption_set
from wizard.fsutil import json_text

INDEX_VERSION = 5  # 5: image sizes as trained (EXIF orientation applied)
# data settings that do not change which rows or images are read: not part of the source key
_NOT_IN_KEY = ("prompt", "eval_fraction", "max_pixels", "min_pixels")


def index_dir() -> Path:
    """The data indexes (and, under tokens/, the tokenized captions of training)."""
    from wizard.paths import cache_dir

    return cache_dir("data")


@dataclass
class Prepared:
    captions: CaptionSet
    index: Path | None  # the index file (None: it could not be written)
    checked: int  # images decoded by this preparation
    reused: int  # images whose verdict came from the index
    seconds: float  # the whole preparation
    verify_s: float = 0.0  # of which checking images (reading, hashing, decoding)

    def summary(self) -> str:
        """The one line printed on the terminal and shown in the dashboard header."""
        r = self.captions.report
        fmt = r.format + (" (detected)" if r.detected else "")
        line = (f"data: {fmt} · {r.images:,} images, {r.captions:,} captions · {r.num_train:,} train / "
                f"{r.num_eval:,} eval")
        if r.bad_rows:
            line += f" · {r.bad_rows:,} bad rows skipped"
        if self.checked:
            rate = self.checked / max(self.verify_s, 1e-6)
            line += f" · {self.checked:,} images checked in {self.seconds:.1f}s ({rate:,.0f}/s)"
        elif self.reused:
            line += f" · index reused ({self.reused:,} images, none re-checked) in {self.seconds:.1f}s"
        return line


def prepare_data(spec, *, seed: int, base_dir: str | Path | None = None, progress=None,
                 cache_dir: str | Path | None = None, limits=None) -> Prepared:
    """Read and verify recipe.data through the index cache, then write the index (atomically).
    `limits`: wizard.images.limits_for(recipe.model) (None: the safe default)."""
    t = time.perf_counter()
    verifier = IndexVerifier(Path(cache_dir) if cache_dir else index_dir(), locate(spec, base_dir), spec)
    with no_gc():
        captions = verifier.unchanged(seed, limits)  # nothing changed since the index was written: no row read again
        if captions is None:
            captions = load_caption_set(spec, seed=seed, base_dir=base_dir, progress=progress, verifier=verifier,
                                        limits=limits)
            verifier.save()
        elif progress is not None:
            for line in captions.report.lines():
                progress.say(line)
    return Prepared(captions, verifier.path if verifier.path.is_file() else None, verifier.checked, verifier.reused,
                    time.perf_counter() - t, verifier.verify_s)


def read_prepared(path: str | Path | None, spec, *, seed: int, limits=None) -> CaptionSet | None:
    """The CaptionSet from an index written by prepare_data, without opening any image; None when
    there is no usable index (missing, other settings, or images embedded in the data files)."""
    index = _load(Path(path)) if path else None
    if not index or index.get("key_spec") != _key_spec(spec) or index.get("examples") is None:
        return None
    with no_gc():
        return _from_index(index, spec, seed, limits)


@contextlib.contextmanager
def no_gc():
    """No cyclic garbage collection while building 100k small objects (none of them in a cycle): with
    torch imported (the training process), each automatic collection walks its millions of objects,
    which made reading 5k examples take 0.6 s instead of 0.1 s."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _from_index(index: dict, spec, seed: int, limits=None) -> CaptionSet:
    ex, files = index["examples"], index["files"]
    paths, shas = _full_paths(index), files["sha"]
    examples = [Example(i, Path(paths[k]), caps) for i, k, caps in zip(ex["id"], ex["file"], ex["captions"])]
    digests = {i: shas[k] for i, k in zip(ex["id"], ex["file"])}
    sizes = {i: (files["w"][k], files["h"][k]) for i, k in zip(ex["id"], ex["file"])}
    rep = dict(index["report"])
    rep["first_bad"] = [BadRow(where, reason) for where, reason in rep.get("first_bad", [])]
    held_out = index.get("held_out")
    return finish_caption_set(examples, digests, sizes, DataReport(**rep), spec, seed=seed,
                              prompts=Counter(dict(index.get("prompts") or {})),
                              held_out=None if held_out is None else set(held_out), limits=limits)


def _full_paths(index: dict) -> list[str]:
    """Image paths are stored relative to the index's root folder when inside it (half the bytes)."""
    root = index.get("root") or ""
    return [p if p.startswith("/") or not root else f"{root}/{p}" for p in index["files"]["path"]]


# ----------------------------------------------------------------------------- the verifier
def _key_spec(spec) -> dict:
    d = spec.to_dict() if hasattr(spec, "to_dict") else spec.model_dump(mode="json")
    return {k: v for k, v in sorted(d.items()) if k not in _NOT_IN_KEY}


def _load(path: Path) -> dict | None:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) and index.get("version") == INDEX_VERSION else None


def _stat(path: str) -> list | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class IndexVerifier:
    """Checks images for wizard.data.load, reusing the verdicts recorded for this source."""

    def __init__(self, folder: Path, located, spec):
        key_spec = _key_spec(spec)
        source = str(Path(located.path).resolve()) if located.path else str(spec.dataset)
        key = hashlib.sha256(json.dumps([source, located.format, key_spec], sort_keys=True).encode()).hexdigest()
        self.path = folder / f"{key[:32]}.json"
        self.spec = spec
        self.checked = 0
        self.reused = 0
        self.verify_s = 0.0
        self.files: dict[str, tuple] = {}  # path -> (size, mtime_ns, sha256)
        self.verdicts: dict[str, list] = {}  # sha256 -> [reason, width, height]
        self.missing: set[str] = set()  # image paths that could not be read (not found, a folder...)
        self._meta: dict = {"source": source, "format": located.format, "key_spec": key_spec}
        self._root = str(Path(source).parent if located.path and Path(source).is_file() else source)
        self._old = _load(self.path) or {}
        f = self._old.get("files") or {}
        self._old_files = dict(zip(_full_paths(self._old), zip(f.get("size", ()), f.get("mtime", ()), f.get("sha", ())))) \
            if f else {}
        self._old_verdicts_cache: dict[str, list] | None = None

    @property
    def _old_verdicts(self) -> dict[str, list]:
        """sha256 -> [reason, width, height] of everything the index saw (built when first needed)."""
        if self._old_verdicts_cache is None:
            f = self._old.get("files") or {}
            found = dict(self._old.get("blobs") or {})
            found.update((h, [r, w, ht]) for h, r, w, ht in zip(f.get("sha", ()), f.get("reason", ()),
                                                                f.get("w", ()), f.get("h", ())))
            self._old_verdicts_cache = found
        return self._old_verdicts_cache

    def unchanged(self, seed: int, limits=None) -> CaptionSet | None:
        """The indexed CaptionSet when the data files, every image file (size and mtime) and every
        missing image are as they were; None otherwise (then everything is read, verdicts reused)."""
        old = self._old
        if not old.get("examples") or not old.get("sources"):
            return None
        if any(_stat(path) != [size, mtime] for path, size, mtime in old["sources"]):
            return None
        if any(_stat(path) != [size, mtime] for path, (size, mtime, _) in self._old_files.items()):
            return None
        if any(os.path.exists(path) for path in old.get("missing") or ()):
            return None
        self.reused = len(self._old_files)
        return _from_index(old, self.spec, seed, limits)

    def bind(self, located, result, spec) -> None:
        """Called by load_caption_set once the rows are read: which files they came from."""
        sources = {str(Path(p).resolve()) for p in (located.path, result.file) if p and Path(p).is_file()}
        self._meta["sources"] = [[p, *_stat(p)] for p in sorted(sources) if _stat(p)]
        self._meta["prompts"] = Counter(r.prompt for r in result.rows if r.prompt).most_common(3)

    def check(self, images: list, progress=None) -> list[Check]:
        out: list[Check | None] = [None] * len(images)
        todo: list[int] = []
        for i, image in enumerate(images):
            if isinstance(image, Path):
                hit = self._by_stat(image)
                if hit is not None:
                    out[i] = hit
                    continue
            elif not isinstance(image, (bytes, bytearray)):  # an in-memory image: nothing to cache
                out[i] = check_source(image)
                continue
            todo.append(i)
        # rows that share an image file (several captions per image): check the file once
        first: dict[str, int] = {}
        repeats: list[tuple[int, int]] = []
        for i in todo:
            key = str(images[i]) if isinstance(images[i], Path) else None
            if key is not None and key in first:
                repeats.append((i, first[key]))
            elif key is not None:
                first[key] = i
        repeated = {i for i, _ in repeats}
        todo = [i for i in todo if i not in repeated]
        t = time.perf_counter()
        _ = self._old_verdicts  # built here, before the threads read it
        done = check_parallel([images[i] for i in todo], progress, self._check_chunk)
        self.verify_s += time.perf_counter() - t
        for i, (check, record) in zip(todo, done):
            out[i] = check
            if record is None:
                self.missing.add(str(images[i]))
                continue
            path, size, mtime, sha, verdict, decoded = record
            self.checked += decoded
            self.reused += not decoded
            if path is not None:
                self.files[path] = (size, mtime, sha)
            self.verdicts[sha] = verdict
        for i, j in repeats:
            out[i] = out[j]
        return out  # type: ignore[return-value]

    def _by_stat(self, path: Path) -> Check | None:
        key = str(path)
        rec = self._old_files.get(key)
        if rec is None or _stat(key) != [rec[0], rec[1]] or rec[2] not in self._old_verdicts:
            return None
        verdict = self._old_verdicts[rec[2]]
        self.reused += key not in self.files  # an image shared by several rows counts once
        self.files[key], self.verdicts[rec[2]] = rec, verdict
        return _as_check(rec[2], verdict)

    def _check_chunk(self, images: list) -> list[tuple[Check, tuple | None]]:
        return [self._check_one(im) for im in images]

    def _check_one(self, image) -> tuple[Check, tuple | None]:
        """(check, (path, size, mtime, sha, verdict, decoded?)); no record when the file is unreadable."""
        path = size = mtime = None
        if isinstance(image, Path):
            try:
                st = os.stat(image)
                data = image.read_bytes()
            except OSError:
                return check_source(image), None  # not found / a folder / unreadable: the usual reasons
            path, size, mtime = str(image), st.st_size, st.st_mtime_ns
        else:
            data = bytes(image)
        sha = hashlib.sha256(data).hexdigest()
        verdict = self._old_verdicts.get(sha)
        if verdict is not None:
            return _as_check(sha, verdict), (path, size, mtime, sha, verdict, False)
        digest, reason, dims = inspect_image_bytes(data)
        verdict = [reason, *(dims or (None, None))]
        return (digest, reason, dims), (path, size, mtime, sha, verdict, True)

    def collected(self, examples: list[Example], digests: dict, sizes: dict, report: DataReport,
                  held_out: set[str] | None = None) -> None:
        """Called by load_caption_set with every verified (and filtered) example, before the split and
        the cap; `held_out`: the ids the data file holds out."""
        rep = {k: v for k, v in report.__dict__.items()
               if k not in ("images", "captions", "num_train", "num_eval", "capped_from")}
        rep["first_bad"] = [[b.where, b.reason] for b in report.first_bad]
        rep["bad_by_reason"], rep["notes"], rep["info"] = dict(report.bad_by_reason), list(report.notes), list(report.info)
        self._meta["report"] = rep
        self._meta["held_out"] = None if held_out is None else sorted(held_out)
        files = all(isinstance(ex.image, Path) and str(ex.image) in self.files for ex in examples)
        self._examples = [(ex.id, str(ex.image), ex.captions) for ex in examples] if files else None

    def save(self) -> Path | None:
        """Write the index: the verdict of every image seen, and the verified examples when every image
        is a file (embedded images stay in their data files: the training process reads those again,
        through this same cache)."""
        from wizard.fsutil import atomic_write_text

        files = sorted(self.files.items())
        position = {p: k for k, (p, _) in enumerate(files)}
        verdicts = [self.verdicts[rec[2]] for _, rec in files]
        on_disk = {rec[2] for _, rec in files}
        root = self._root.rstrip("/") + "/"
        ex = getattr(self, "_examples", None)
        index = {"version": INDEX_VERSION, **self._meta, "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
                 "root": self._root, "missing": sorted(self.missing),
                 "files": {"path": [p[len(root):] if p.startswith(root) else p for p, _ in files],
                           "size": [r[0] for _, r in files], "mtime": [r[1] for _, r in files],
                           "sha": [r[2] for _, r in files], "reason": [v[0] for v in verdicts],
                           "w": [v[1] for v in verdicts], "h": [v[2] for v in verdicts]},
                 "blobs": {h: v for h, v in self.verdicts.items() if h not in on_disk},  # embedded images
                 "examples": {"id": [e[0] for e in ex], "file": [position[e[1]] for e in ex],
                              "captions": [e[2] for e in ex]} if ex is not None else None}
        with contextlib.suppress(OSError):  # a read-only cache: slower next time, nothing worse
            atomic_write_text(self.path, json_text(index, separators=(",", ":")))
            return self.path
        return None


def _as_check(sha: str, verdict: list) -> Check:
    reason, w, h = verdict
    return (None, reason, None) if reason else (sha, None, (w, h))
