"""ModelScope calls: resolve a model or dataset id to a local folder, downloading what is missing.

    resolved = resolve_model(recipe.model, progress=...)   # at the start of a run
    resolved.path, resolved.revision, resolved.files       # folder to load; lock.json facts
    folder = resolve_dataset("AI-ModelScope/M3IT", subset="coco-cn")

How a ModelScope id is resolved (the endpoint is MODELSCOPE_ENDPOINT, default www.modelscope.cn; the
cache is wizard.paths.download_root(): $CAPTION_WIZARD_CACHE/modelscope, else $MODELSCOPE_CACHE,
default ~/.cache/modelscope):
  1. Cache first (wizard/hub/cache.py): when our manifest of a complete earlier download is there
     and the files still match it, the snapshot is used as is: no network call at all.
  2. Otherwise a TCP connect to the endpoint (a few seconds at most) tells an offline machine
     apart before the client's own retries would take half a minute.
  3. One listing request; keep the files training and inference need (safetensors weights,
     configs, tokenizer and processor files: no .bin/.pth duplicates, onnx or gguf); add up what
     is missing and compare it with the free disk space.
  4. The modelscope client downloads only the missing files into the cache: it resumes a
     `.incomplete` file with an HTTP Range request and checks every file's size and sha256.
  5. The manifest records the resolved revision and the sha256 of every file (lock.json).

Nothing here prints: progress and notes go to the caller's DownloadProgress (wizard/hub/progress.py),
failures are UserErrors. We drive `modelscope_hub` (the package that `modelscope.snapshot_download`
delegates to) rather than `modelscope` itself: importing `modelscope` imports torch, 3 to 10 s
before a download starts.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import shutil
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wizard.errors import UserError
from wizard.hub.cache import (LEGACY_WEIGHTS, MODEL_PATTERNS, Snapshot, cache_root, cached_snapshot, hash_folder,
                              have, manifest_path, match, partial_size, read_manifest, select, selection_key,
                              sha256_file, snapshot_dir, usable_cache_without_manifest, write_manifest)
from wizard.hub.progress import DownloadProgress, Silent
from wizard.paths import download_root_setting
from wizard.units import fmt_bytes

DEFAULT_ENDPOINT = "https://www.modelscope.cn"
PROBE_TIMEOUT_S = 4.0  # connect test before any download; keeps "offline" well under 15 s

M3IT_CAPTION_SUBSETS = ["coco-cn", "flickr8k-cn", "coco", "textcap", "image-paragraph-captioning"]
M3IT_FILES = ["instructions.json", "train.jsonl", "val.jsonl", "test.jsonl"]


class HubUnreachable(UserError):
    """The endpoint did not answer (or kept failing): callers fall back to a cached copy."""


@dataclass
class ResolvedModel:
    path: Path                 # folder to load (config.json, weights, processor files)
    source: str                # "modelscope" | "local" | "demo"
    model_id: str
    revision: str | None       # resolved commit for ModelScope ids (what lock.json pins)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256


# -- settings (read on every call: tests and users change them between calls) ----------------
def hub_endpoint() -> str:
    """MODELSCOPE_ENDPOINT, else the deprecated MODELSCOPE_DOMAIN, else the public site."""
    value = (os.environ.get("MODELSCOPE_ENDPOINT") or os.environ.get("MODELSCOPE_DOMAIN") or "").strip()
    value = value or DEFAULT_ENDPOINT
    if not value.lower().startswith(("http://", "https://")):
        value = "https://" + value
    return value.rstrip("/")


def redact_url(text: str) -> str:
    """`http://user:secret@host` -> `http://user:***@host` (in a URL or any text holding one)."""
    import re

    return re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*):[^/\s@]*@", r"\1:***@", str(text))


def disk_free(path: Path) -> int:
    """Free bytes on the disk holding `path` (its nearest existing parent). Tests patch this."""
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def catalog_model_ids() -> list[str]:
    try:
        from wizard.catalog import MODELS
    except Exception:  # the catalog is optional for downloads
        return []
    return list(MODELS)


# -- public API -------------------------------------------------------------------------------
def resolve_model(model: Any, *, revision: str | None = None,
                  progress: DownloadProgress | None = None) -> ResolvedModel:
    """The local folder of the recipe's model section (id, source, revision), downloading if needed.

    `revision` overrides model.revision (replaying a run with its lock.json). `progress`: where a
    download reports (None: silently).
    """
    model_id = str(_field(model, "id") or "").strip()
    source = str(_field(model, "source") or "modelscope")
    if not model_id:
        raise UserError("model.id is empty", hint="e.g. model.id=Qwen/Qwen2-VL-2B-Instruct")
    if source == "demo":
        try:
            from wizard.demo.model import demo_base_path
        except ImportError as e:
            raise UserError(f"the demo model is not part of this install ({e})") from e
        path = Path(demo_base_path())
        return ResolvedModel(path, "demo", model_id, None, hash_folder(path))
    folder = Path(model_id).expanduser()
    if source == "local" or (source == "modelscope" and folder.is_dir()):
        return resolve_local(model_id, folder)
    if source != "modelscope":
        raise UserError(f"model.source={source!r} is not one of modelscope, local, demo")
    check_repo_id(model_id, "model.id")
    rev = revision or _field(model, "revision") or "master"
    snap = fetch_snapshot(model_id, "model", revision=rev, progress=progress)
    return ResolvedModel(snap.path, "modelscope", model_id, snap.revision, dict(snap.files))


def resolve_dataset(dataset_id: str, subset: str | None = None, revision: str | None = None, *,
                    progress: DownloadProgress | None = None) -> Path:
    """Local folder of a ModelScope dataset, with only the files caption training needs."""
    return resolve_dataset_snapshot(dataset_id, subset, revision, progress=progress).path


def resolve_dataset_snapshot(dataset_id: str, subset: str | None = None, revision: str | None = None, *,
                             progress: DownloadProgress | None = None) -> Snapshot:
    local = Path(dataset_id).expanduser()
    if local.exists():
        return Snapshot(local, dataset_id, "dataset", "local", "local", {}, {})
    check_repo_id(dataset_id, "data.dataset")
    name = dataset_id.split("/", 1)[1].lower()
    patterns, root = ["*"], None
    if name == "m3it":
        if not subset:
            raise UserError(f"{dataset_id} is about 384 GB: choose one subset",
                            hint="caption subsets: " + ", ".join(M3IT_CAPTION_SUBSETS)
                            + " (data.subset=coco-cn, or --subset coco-cn)")
        root = f"data/captioning/{subset}"
        patterns = [f"{root}/{f}" for f in M3IT_FILES]
    snap = fetch_snapshot(dataset_id, "dataset", revision=revision or "master", patterns=patterns,
                          root=root, progress=progress, subset=subset)
    if name == "coco_2014_caption":
        _fetch_script_urls(snap, progress or Silent())
    return snap


def listed_size(repo_id: str, repo_type: str = "model", revision: str = "master", *,
                timeout: float = PROBE_TIMEOUT_S) -> int | None:
    """Bytes a download of a model's run files would fetch, from the hub's file list; None when the
    hub does not answer within `timeout`. A listing the hub refuses raises UserError."""
    endpoint, cache = hub_endpoint(), cache_root()
    ok, _ = _reachable(endpoint, timeout=timeout)
    if not ok:
        return None
    with _quiet_client():
        listing = _list(_api(endpoint, cache), repo_id, repo_type, revision, None, redact_url(endpoint), None)
    return sum(e["size"] for e in select(listing, repo_type, None))


# -- the download -----------------------------------------------------------------------------
def fetch_snapshot(repo_id: str, repo_type: str, *, revision: str = "master",
                   patterns: list[str] | None = None, root: str | None = None,
                   progress: DownloadProgress | None = None, subset: str | None = None) -> Snapshot:
    """Cache first, then download what is missing (see the module docstring)."""
    progress = progress or Silent()
    endpoint, cache = hub_endpoint(), cache_root().resolve()
    shown = redact_url(endpoint)  # messages, manifests and lock.json never carry a password
    what = repo_id if repo_type == "model" else f"dataset {repo_id}"
    key = selection_key(patterns)
    cached = cached_snapshot(repo_type, repo_id, revision, key, cache)
    if cached is not None:
        return cached

    ok, reason = _reachable(endpoint)
    try:
        if not ok:
            raise HubUnreachable(reason)
        with _quiet_client():
            listing = _list(_api(endpoint, cache), repo_id, repo_type, revision, root, shown, subset)
    except HubUnreachable as e:
        fallback = usable_cache_without_manifest(repo_type, repo_id, revision, cache)
        if fallback is None:
            raise _offline_error(what, shown, e.message, cache, repo_type, repo_id) from None
        progress.note(f"offline ({shown}: {redact_url(e.message)}): using the cached {what} "
                      f"at {fallback.path} (its revision is unknown)", warning=True)
        return fallback

    with _quiet_client():
        api = _api(endpoint, cache)
        entries = select(listing, repo_type, patterns)
        if not entries:
            where = f" under {root}/" if root else ""
            raise UserError(f"{what} (revision {revision}) on {shown} has no files we can use{where}",
                            hint="a model needs config.json and safetensors weights" if repo_type == "model"
                            else f"subset {subset!r} may not exist" if subset else None)
        out_dir = snapshot_dir(repo_type, repo_id, revision, cache)
        previous = read_manifest(manifest_path(repo_type, repo_id, revision, key, cache))
        missing = [e for e in entries if not have(out_dir, e, previous)]
        resumed = sum(partial_size(out_dir / e["path"]) for e in missing)
        need = sum(e["size"] for e in missing) - resumed
        free = disk_free(cache)
        if need > free:
            raise UserError(
                f"not enough disk space for {what}: the download needs {fmt_bytes(need)}, "
                f"only {fmt_bytes(free)} free in {cache}",
                hint=f"free some space, or point {download_root_setting()} at a bigger disk")
        downloaded = 0
        if missing:
            allow = patterns or MODEL_PATTERNS + (
                LEGACY_WEIGHTS if any(match(e["path"], LEGACY_WEIGHTS) for e in entries) else [])
            path = _download(api, repo_id, repo_type, revision, allow, missing, cache, progress, what, shown)
            out_dir = Path(path)
            downloaded = max(0, need)  # what was not on disk yet: a resumed file counts only its rest
    files = {e["path"]: e["sha256"] or sha256_file(out_dir / e["path"]) for e in entries}
    snap = Snapshot(out_dir, repo_id, repo_type, revision, _resolved_revision(listing, revision),
                    files, {e["path"]: e["size"] for e in entries}, downloaded, shown,
                    resumed=resumed if downloaded else 0)
    write_manifest(snap, key, cache)
    return snap


def _download(api, repo_id, repo_type, revision, patterns, missing, cache, progress: DownloadProgress,
              what, endpoint) -> Path:
    from modelscope_hub.errors import FileDownloadError, FileIntegrityError, HubError

    progress.start(what, sum(e["size"] for e in missing), len(missing))
    try:
        return api.download_repo(
            repo_id, repo_type, revision=revision, cache_dir=cache,
            allow_patterns=patterns, file_list=[e["raw"] for e in missing],
            progress_callbacks=[_callback_class(progress)], max_workers=4)
    except FileDownloadError as e:
        failed = getattr(e, "failed_files", {}) or {}
        bad = [p for p, err in failed.items() if isinstance(err, FileIntegrityError)]
        if bad:
            raise UserError(
                f"{bad[0]} of {what} from {endpoint} failed its size/sha256 check on every try"
                + (f" ({len(bad) - 1} more files too)" if len(bad) > 1 else ""),
                hint="the hub or mirror serves a broken copy; try again later or another "
                     "MODELSCOPE_ENDPOINT") from None
        first = next(iter(failed.items()), ("?", e))
        raise UserError(f"download of {what} from {endpoint} stopped: {first[0]}: {_short(first[1])}",
                        hint="run the same command again: finished files are kept and a partial "
                             "file resumes where it stopped") from None
    except HubError as e:
        raise UserError(f"download of {what} from {endpoint} failed: {_short(e)}",
                        hint="run the same command again to resume") from None
    except KeyboardInterrupt:
        progress.stop()
        progress.note("download interrupted: run the same command again to resume")
        raise
    finally:
        progress.stop()


def _callback_class(progress: DownloadProgress):
    """The client's per-file callback (built as cls(filename, size), fed from its worker threads)."""
    from modelscope_hub import ProgressCallback

    class Callback(ProgressCallback):
        def __init__(self, filename: str, file_size: int):
            super().__init__(filename, file_size)
            progress.file_started(filename, file_size)

        def update(self, size: int) -> None:
            progress.file_advanced(self.filename, size)

        def end(self) -> None:
            progress.file_done(self.filename)

    return Callback


# -- hub calls --------------------------------------------------------------------------------
def _api(endpoint: str, cache: Path):
    """A client bound to this endpoint and cache (modelscope's own config is read once per process)."""
    from modelscope_hub.api import HubApi
    from modelscope_hub.config import HubConfig

    return HubApi(HubConfig(endpoint=endpoint, cache_dir=Path(cache).expanduser().resolve()))


def _list(api, repo_id, repo_type, revision, root, endpoint, subset) -> list[dict]:
    from modelscope_hub.errors import (AuthenticationError, HubError, NetworkError, NotExistError,
                                       PermissionDeniedError, ServerError)

    what = repo_id if repo_type == "model" else f"dataset {repo_id}"
    try:
        if repo_type == "dataset":
            return api.legacy.list_dataset_files_paginated(repo_id, revision=revision, root_path=root or "/")
        return api.legacy.list_repo_files(repo_id, repo_type, revision=revision, recursive=True)
    except NotExistError:
        if root:  # a missing folder: is it the subset or the whole dataset?
            with contextlib.suppress(HubError):
                api.legacy.get_repo_info(repo_id, repo_type)
                raise UserError(f"{what} has no subset {subset!r} ({root}/ not found on {endpoint})",
                                hint="caption subsets: " + ", ".join(M3IT_CAPTION_SUBSETS)) from None
        raise _not_found(repo_id, repo_type, revision, endpoint) from None
    except (AuthenticationError, PermissionDeniedError) as e:
        raise UserError(f"{what} on {endpoint} needs a login: {_short(e)}",
                        hint="run `modelscope login` or set MODELSCOPE_API_TOKEN") from None
    except (NetworkError, ServerError) as e:
        raise HubUnreachable(_short(e)) from None
    except HubError as e:
        raise UserError(f"the hub at {endpoint} refused to list {what}: {_short(e)}") from None


def _not_found(repo_id, repo_type, revision, endpoint) -> UserError:
    at = f" at revision {revision}" if revision not in ("master", "main") else ""
    if repo_type != "model":
        return UserError(f"dataset {repo_id}{at} not found on {endpoint}")
    known = catalog_model_ids()
    close = [k for k in _close_ids(repo_id, known) if k != repo_id]
    if repo_id in known and not at:
        hint = (f"{repo_id} is a known ModelScope model: is {endpoint} a ModelScope hub or mirror? "
                "(MODELSCOPE_ENDPOINT)")
    elif close:
        hint = "did you mean " + (", ".join(close[:-1]) + " or " if len(close) > 1 else "") + close[-1] + "?"
    else:
        hint = "check the id (owner/name, as on modelscope.cn/models), or use a local folder: model.source=local"
    return UserError(f"model {repo_id}{at} not found on {endpoint}", hint=hint)


def _close_ids(wanted: str, known: list[str]) -> list[str]:
    low = {k.lower(): k for k in known}
    hits = [low[m] for m in difflib.get_close_matches(wanted.lower(), list(low), n=3, cutoff=0.6)]
    tails = {k.split("/")[-1].lower(): k for k in known}
    tail = wanted.split("/")[-1].lower()
    hits += [tails[m] for m in difflib.get_close_matches(tail, list(tails), n=2, cutoff=0.75)]
    return list(dict.fromkeys(hits))[:3]


def _reachable(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str]:
    """Can we open a TCP connection to the endpoint (or its proxy)? DNS included, time bounded."""
    import requests.utils

    parts = urlsplit(endpoint)
    proxy = requests.utils.get_environ_proxies(endpoint).get(parts.scheme)
    target = urlsplit(proxy if "://" in (proxy or "") else f"http://{proxy}") if proxy else parts
    host = target.hostname or ""
    port = target.port or (443 if target.scheme == "https" else 80)
    result: dict[str, Any] = {}

    def attempt():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError as e:
            result["error"] = e.strerror or str(e) or type(e).__name__

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if result.get("ok"):
        return True, ""
    return False, str(result.get("error") or f"no answer within {timeout:.0f} s")


def _offline_error(what, endpoint, reason, cache, repo_type, repo_id) -> UserError:
    name = repo_id.split("/")[-1]
    if repo_type == "model":
        hint = (f"use a local copy: model.source=local model.id=/path/to/{name} (a folder with "
                f"config.json), or a mirror: MODELSCOPE_ENDPOINT=https://your-mirror")
    else:
        hint = ("use local data: data.dataset=/path/to/folder, or a mirror: "
                "MODELSCOPE_ENDPOINT=https://your-mirror")
    endpoint, reason = redact_url(endpoint), redact_url(reason)
    return UserError(f"cannot reach the ModelScope hub at {endpoint} ({reason}): this machine seems "
                     f"offline, and {what} is not in the cache ({cache})", hint=hint)


@contextlib.contextmanager
def _quiet_client():
    """No tqdm bars or log lines from the client: we draw one bar and say what went wrong."""
    import logging

    from modelscope_hub import _download as client_download

    log = logging.getLogger("modelscope_hub")
    level = log.level
    if not os.environ.get("MODELSCOPE_LOG_LEVEL"):
        log.setLevel(logging.CRITICAL)
    tqdm = getattr(client_download, "tqdm", None)
    if tqdm is not None:
        client_download.tqdm = functools.partial(tqdm, disable=True)
    try:
        yield
    finally:
        log.setLevel(level)
        if tqdm is not None:
            client_download.tqdm = tqdm


def _resolved_revision(listing: list[dict], requested: str) -> str:
    """The commit of the newest file in the listing (the hub lists each file's last commit)."""
    dated = [(int(f.get("CommittedDate") or 0), f.get("Revision")) for f in listing if f.get("Revision")]
    return max(dated)[1] if dated else requested


# -- local folders ----------------------------------------------------------------------------
def resolve_local(model_id: str, folder: Path) -> ResolvedModel:
    """A model folder on this machine (model.source=local), checked and hashed; UserError when it is not one."""
    if not folder.is_dir():
        hint = ("model.source=modelscope downloads it from ModelScope" if "/" in model_id and
                not model_id.startswith((".", "/", "~")) else "model.id must be a folder with config.json")
        raise UserError(f"model folder {folder} does not exist (model.id={model_id})", hint=hint)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder} has no config.json: not a Hugging Face model folder (model.id)",
                        hint="point model.id at the folder holding config.json and the weights")
    return ResolvedModel(folder.resolve(), "local", model_id, None, hash_folder(folder))


# -- coco_2014_caption: its data lives outside the hub, at the URLs in its loading script ------
def _fetch_script_urls(snap: Snapshot, progress: DownloadProgress) -> None:
    """Download the files a dataset's loading script lists in `_URLS` into <snapshot>/downloads/."""
    import ast

    urls: list[str] = []
    for script in sorted(snap.path.glob("*.py")):
        try:
            tree = ast.parse(script.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") in ("_URLS", "_URL")
                                                    for t in node.targets):
                with contextlib.suppress(ValueError):
                    value = ast.literal_eval(node.value)
                    urls += list(value.values()) if isinstance(value, dict) else [value]
    urls = [u for u in urls if isinstance(u, str) and u.startswith(("http://", "https://"))]
    for url in dict.fromkeys(urls):
        dest = snap.path / "downloads" / Path(urlsplit(url).path).name
        if not dest.is_file():
            _download_url(url, dest, progress)
        rel = dest.relative_to(snap.path).as_posix()
        snap.files[rel] = sha256_file(dest)
        snap.sizes[rel] = dest.stat().st_size


def _download_url(url: str, dest: Path, progress: DownloadProgress, timeout: float = 30.0) -> None:
    import requests

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    progress.note(f"downloading {url}")
    try:
        with requests.get(url, stream=True, timeout=(10, timeout)) as resp:
            resp.raise_for_status()
            with open(part, "wb") as f:
                for chunk in resp.iter_content(1 << 20):
                    f.write(chunk)
        os.replace(part, dest)
    except (requests.RequestException, OSError) as e:
        part.unlink(missing_ok=True)
        raise UserError(f"could not download {url} (listed in the dataset's loading script): {_short(e)}",
                        hint="these files live outside the hub; for Chinese COCO captions use "
                             "AI-ModelScope/M3IT with subset coco-cn (images included)") from None


# -- small helpers ----------------------------------------------------------------------------
def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def check_repo_id(repo_id: str, where: str) -> None:
    """UserError naming `where` unless `repo_id` is owner/name."""
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise UserError(f"{where}={repo_id!r} is not a ModelScope id (owner/name) nor an existing folder",
                        hint="e.g. Qwen/Qwen2-VL-2B-Instruct, or a path to a local folder")


def _short(e: BaseException | Any) -> str:
    text = redact_url(" ".join(str(e).split())) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."
