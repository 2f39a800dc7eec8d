"""ModelScope downloads: model weights and datasets, cache first, with a progress bar.

    caption-wizard download Qwen/Qwen2-VL-2B-Instruct [--revision R]
    caption-wizard download AI-ModelScope/M3IT --dataset --subset coco-cn

    resolved = resolve_model(recipe.model)               # at the start of a run
    resolved.path, resolved.revision, resolved.files     # folder to load; lock.json facts
    folder = resolve_dataset("AI-ModelScope/M3IT", subset="coco-cn")

How a ModelScope id is resolved (the cache layout and the environment variables are modelscope's:
MODELSCOPE_CACHE, default ~/.cache/modelscope; MODELSCOPE_ENDPOINT, default www.modelscope.cn):
  1. Cache first: after a complete download we write a small manifest next to the snapshot
     (<cache>/models/<owner>--<name>/.caption-wizard/). When it is there and the files still match
     it, the snapshot is used as is: no network call at all, offline or not.
  2. Otherwise a TCP connect to the endpoint (a few seconds at most) tells an offline machine
     apart before the client's own retries would take half a minute.
  3. One listing request; keep the files training and inference need (safetensors weights,
     configs, tokenizer and processor files: no .bin/.pth duplicates, onnx or gguf); add up what
     is missing and compare it with the free disk space.
  4. The modelscope client downloads only the missing files into the standard cache: it resumes
     a `.incomplete` file with an HTTP Range request and checks every file's size and sha256.
  5. The manifest records the resolved revision and the sha256 of every file (lock.json).

We drive `modelscope_hub` (the package that `modelscope.snapshot_download` delegates to) rather
than `modelscope` itself: importing `modelscope` imports torch, 3 to 10 s before a download starts.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import functools
import hashlib
import json
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wizard.errors import UserError

DEFAULT_ENDPOINT = "https://www.modelscope.cn"
PROBE_TIMEOUT_S = 4.0  # connect test before any download; keeps "offline" well under 15 s

# What a run needs from a model repo. Weights: safetensors; .bin/.pth only when a repo has no
# safetensors at all (older repos).
MODEL_PATTERNS = [
    "*.safetensors", "*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "*.py",
    "tokenizer*", "vocab*", "merges*", "chat_template*",
]
MODEL_IGNORE = ["onnx/*", "*.onnx", "*.onnx_data", "*.gguf", "*.msgpack", "*.h5", "*.ckpt",
                "*.ot", "openvino/*", "coreml/*", "*.mlmodel", "*.tflite"]
LEGACY_WEIGHTS = ["*.bin", "*.pth", "*.pt"]

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


@dataclass
class Snapshot:
    """A downloaded (or cached) selection of one hub repo."""
    path: Path
    repo_id: str
    repo_type: str             # "model" | "dataset"
    requested: str             # revision asked for ("master", a tag or a commit)
    revision: str              # resolved commit when the hub told us, else `requested`
    files: dict[str, str]      # relative path -> sha256
    sizes: dict[str, int]
    downloaded: int = 0        # bytes fetched by this call (0: everything came from the cache)
    endpoint: str = ""
    resumed: int = 0           # bytes of partial files an earlier call left, which this one kept

    @property
    def total_size(self) -> int:
        return sum(self.sizes.values())


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


def cache_root() -> Path:
    return Path(os.environ.get("MODELSCOPE_CACHE") or Path.home() / ".cache" / "modelscope").expanduser()


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
def resolve_model(model: Any, *, revision: str | None = None, console=None) -> ResolvedModel:
    """The local folder of the recipe's model section (id, source, revision), downloading if needed.

    `revision` overrides model.revision (replaying a run with its lock.json).
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
        return ResolvedModel(path, "demo", model_id, None, _hash_folder(path))
    folder = Path(model_id).expanduser()
    if source == "local" or (source == "modelscope" and folder.is_dir()):
        return _resolve_local(model_id, folder)
    if source != "modelscope":
        raise UserError(f"model.source={source!r} is not one of modelscope, local, demo")
    _check_repo_id(model_id, "model.id")
    rev = revision or _field(model, "revision") or "master"
    snap = fetch_snapshot(model_id, "model", revision=rev, console=console)
    return ResolvedModel(snap.path, "modelscope", model_id, snap.revision, dict(snap.files))


def resolve_dataset(dataset_id: str, subset: str | None = None, revision: str | None = None,
                    console=None) -> Path:
    """Local folder of a ModelScope dataset, with only the files caption training needs."""
    return resolve_dataset_snapshot(dataset_id, subset, revision, console).path


def resolve_dataset_snapshot(dataset_id: str, subset: str | None = None, revision: str | None = None,
                             console=None) -> Snapshot:
    local = Path(dataset_id).expanduser()
    if local.exists():
        return Snapshot(local, dataset_id, "dataset", "local", "local", {}, {})
    _check_repo_id(dataset_id, "data.dataset")
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
                          root=root, console=console, subset=subset)
    if name == "coco_2014_caption":
        _fetch_script_urls(snap, console)
    return snap


# -- the download -----------------------------------------------------------------------------
def fetch_snapshot(repo_id: str, repo_type: str, *, revision: str = "master",
                   patterns: list[str] | None = None, root: str | None = None, console=None,
                   subset: str | None = None) -> Snapshot:
    """Cache first, then download what is missing (see the module docstring)."""
    console = console or _default_console()
    endpoint, cache = hub_endpoint(), cache_root().resolve()
    shown = redact_url(endpoint)  # messages, manifests and lock.json never carry a password
    from rich.markup import escape
    what = repo_id if repo_type == "model" else f"dataset {repo_id}"
    key = _selection_key(patterns)
    cached = _cached_snapshot(repo_type, repo_id, revision, key, cache)
    if cached is not None:
        return cached

    ok, reason = _reachable(endpoint)
    try:
        if not ok:
            raise HubUnreachable(reason)
        with _quiet_client():
            listing = _list(_api(endpoint, cache), repo_id, repo_type, revision, root, shown, subset)
    except HubUnreachable as e:
        fallback = _usable_cache_without_manifest(repo_type, repo_id, revision, cache)
        if fallback is None:
            raise _offline_error(what, shown, e.message, cache, repo_type, repo_id) from None
        console.print(f"[yellow]offline[/] ({escape(shown)}: {escape(redact_url(e.message))}): using the cached {what} "
                      f"at {fallback.path} (its revision is unknown)")
        return fallback

    with _quiet_client():
        api = _api(endpoint, cache)
        entries = _select(listing, repo_type, patterns)
        if not entries:
            where = f" under {root}/" if root else ""
            raise UserError(f"{what} (revision {revision}) on {shown} has no files we can use{where}",
                            hint="a model needs config.json and safetensors weights" if repo_type == "model"
                            else f"subset {subset!r} may not exist" if subset else None)
        out_dir = _snapshot_dir(repo_type, repo_id, revision, cache)
        previous = _read_manifest(_manifest_path(repo_type, repo_id, revision, key, cache))
        missing = [e for e in entries if not _have(out_dir, e, previous)]
        resumed = sum(_partial_size(out_dir / e["path"]) for e in missing)
        need = sum(e["size"] for e in missing) - resumed
        free = disk_free(cache)
        if need > free:
            raise UserError(
                f"not enough disk space for {what}: the download needs {_fmt(need)}, "
                f"only {_fmt(free)} free in {cache}",
                hint="free some space, or point MODELSCOPE_CACHE at a bigger disk")
        downloaded = 0
        if missing:
            allow = patterns or MODEL_PATTERNS + (
                LEGACY_WEIGHTS if any(_match(e["path"], LEGACY_WEIGHTS) for e in entries) else [])
            path = _download(api, repo_id, repo_type, revision, allow, missing, cache, console, what, shown)
            out_dir = Path(path)
            downloaded = max(0, need)  # what was not on disk yet: a resumed file counts only its rest
    files = {e["path"]: e["sha256"] or _sha256(out_dir / e["path"]) for e in entries}
    snap = Snapshot(out_dir, repo_id, repo_type, revision, _resolved_revision(listing, revision),
                    files, {e["path"]: e["size"] for e in entries}, downloaded, shown,
                    resumed=resumed if downloaded else 0)
    _write_manifest(snap, key, cache)
    return snap


def _download(api, repo_id, repo_type, revision, patterns, missing, cache, console, what, endpoint) -> Path:
    from modelscope_hub.errors import FileDownloadError, FileIntegrityError, HubError

    total = sum(e["size"] for e in missing)
    progress = _Progress(console, what, total, len(missing))
    try:
        return api.download_repo(
            repo_id, repo_type, revision=revision, cache_dir=cache,
            allow_patterns=patterns, file_list=[e["raw"] for e in missing],
            progress_callbacks=[progress.callback_class()], max_workers=4)
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
        progress.close()
        console.print("download interrupted: run the same command again to resume")
        raise
    finally:
        progress.close()


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


# -- selection ---------------------------------------------------------------------------------
def _select(listing: list[dict], repo_type: str, patterns: list[str] | None) -> list[dict]:
    blobs = []
    for raw in listing:
        path = raw.get("Path") or raw.get("path") or raw.get("Name") or ""
        if not path or (raw.get("Type") or raw.get("type") or "blob") == "tree":
            continue
        size = raw.get("Size", raw.get("size"))
        blobs.append({"path": path, "size": int(size or 0),
                      "sha256": raw.get("Sha256") or raw.get("sha256") or "", "raw": raw})
    if repo_type == "model" and patterns is None:
        allow = list(MODEL_PATTERNS)
        if not any(fnmatch.fnmatch(b["path"], "*.safetensors") for b in blobs):
            allow += LEGACY_WEIGHTS
        keep = [b for b in blobs if _match(b["path"], allow) and not _match(b["path"], MODEL_IGNORE)]
        if not any(b["path"].endswith("config.json") for b in keep):
            return []
        return keep
    return [b for b in blobs if _match(b["path"], patterns or ["*"])]


def _match(path: str, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(path, p) or ("/" not in p and fnmatch.fnmatch(name, p)) for p in patterns)


def _selection_key(patterns: list[str] | None) -> str:
    return hashlib.sha256(json.dumps(patterns or "model").encode()).hexdigest()[:10]


def _resolved_revision(listing: list[dict], requested: str) -> str:
    """The commit of the newest file in the listing (the hub lists each file's last commit)."""
    dated = [(int(f.get("CommittedDate") or 0), f.get("Revision")) for f in listing if f.get("Revision")]
    return max(dated)[1] if dated else requested


# -- cache and manifest -----------------------------------------------------------------------
def _repo_root(repo_type: str, repo_id: str, cache: Path) -> Path:
    return Path(cache) / f"{repo_type}s" / repo_id.replace("/", "--")


def _snapshot_dir(repo_type: str, repo_id: str, revision: str, cache: Path) -> Path:
    """Where the client puts (or finds) the files: its old layout when one exists, else the standard."""
    owner, name = repo_id.split("/", 1)
    for legacy in (Path(cache) / f"{repo_type}s" / owner / name.replace(".", "___"),
                   Path(cache) / "hub" / f"{repo_type}s" / owner / name.replace(".", "___")):
        if legacy.is_dir() and any(legacy.iterdir()):
            return legacy
    return _repo_root(repo_type, repo_id, cache) / "snapshots" / revision


def _manifest_path(repo_type, repo_id, revision, key, cache) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in revision)
    return _repo_root(repo_type, repo_id, cache) / ".caption-wizard" / f"{safe}.{key}.json"


def _read_manifest(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None
    except (OSError, ValueError):
        return None


def _write_manifest(snap: Snapshot, key: str, cache: Path) -> None:
    from wizard.fsutil import atomic_write_json

    files = {}
    for rel, sha in snap.files.items():
        st = (snap.path / rel).stat()
        files[rel] = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    data = {"repo_id": snap.repo_id, "repo_type": snap.repo_type, "requested": snap.requested,
            "revision": snap.revision, "path": str(snap.path), "endpoint": snap.endpoint,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "files": files}
    with contextlib.suppress(OSError):  # a read-only cache still works, just without the shortcut
        atomic_write_json(_manifest_path(snap.repo_type, snap.repo_id, snap.requested, key, cache), data)


def _cached_snapshot(repo_type, repo_id, revision, key, cache) -> Snapshot | None:
    """A complete earlier download of this selection at `revision` (a branch or the commit it pinned)."""
    exact = _manifest_path(repo_type, repo_id, revision, key, cache)
    candidates = [exact] + sorted(p for p in exact.parent.glob(f"*.{key}.json") if p != exact)
    for path in candidates:
        data = _read_manifest(path)
        if not data or (path != exact and data.get("revision") != revision):
            continue
        folder = Path(data.get("path", ""))
        if folder.is_dir() and all(_file_ok(folder / rel, rec) for rel, rec in data["files"].items()):
            files = {rel: rec["sha256"] for rel, rec in data["files"].items()}
            sizes = {rel: int(rec["size"]) for rel, rec in data["files"].items()}
            return Snapshot(folder, repo_id, repo_type, data.get("requested", revision),
                            data.get("revision") or revision, files, sizes, 0, data.get("endpoint", ""))
    return None


def _file_ok(path: Path, rec: dict) -> bool:
    """Same size, and same bytes: re-hashed only when the file changed since we recorded it."""
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_size != rec.get("size"):
        return False
    if st.st_mtime_ns == rec.get("mtime_ns") or not rec.get("sha256"):
        return True
    return _sha256(path) == rec["sha256"]


def _have(out_dir: Path, entry: dict, previous: dict | None) -> bool:
    """Is this listed file already in place and intact (so it need not be downloaded)?"""
    target = out_dir / entry["path"]
    rec = (previous or {}).get("files", {}).get(entry["path"])
    if rec and rec.get("sha256") == entry["sha256"]:
        return _file_ok(target, rec)
    try:
        if target.stat().st_size != entry["size"]:
            return False
    except OSError:
        return False
    return not entry["sha256"] or _sha256(target) == entry["sha256"]


def _partial_size(path: Path) -> int:
    try:
        return path.with_name(path.name + ".incomplete").stat().st_size
    except OSError:
        return 0


def _usable_cache_without_manifest(repo_type, repo_id, revision, cache) -> Snapshot | None:
    """A snapshot another tool (or an older run) left, complete by the look of it: ok offline."""
    folder = _snapshot_dir(repo_type, repo_id, revision, cache)
    if not folder.is_dir() or any(folder.rglob("*.incomplete")):
        return None
    if repo_type == "model" and not _looks_complete(folder):
        return None
    files = _hash_folder(folder)
    if not files:
        return None
    sizes = {rel: (folder / rel).stat().st_size for rel in files}
    return Snapshot(folder, repo_id, repo_type, revision, revision, files, sizes)


def _looks_complete(folder: Path) -> bool:
    if not (folder / "config.json").is_file():
        return False
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        with contextlib.suppress(OSError, ValueError):
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
            return all((folder / s).is_file() for s in shards)
        return False
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


# -- local folders ----------------------------------------------------------------------------
def _resolve_local(model_id: str, folder: Path) -> ResolvedModel:
    if not folder.is_dir():
        hint = ("model.source=modelscope downloads it from ModelScope" if "/" in model_id and
                not model_id.startswith((".", "/", "~")) else "model.id must be a folder with config.json")
        raise UserError(f"model folder {folder} does not exist (model.id={model_id})", hint=hint)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder} has no config.json: not a Hugging Face model folder (model.id)",
                        hint="point model.id at the folder holding config.json and the weights")
    return ResolvedModel(folder.resolve(), "local", model_id, None, _hash_folder(folder))


def _hash_folder(folder: Path) -> dict[str, str]:
    """sha256 of the files a run uses (same selection as a download), skipping duplicates."""
    names = [p.relative_to(folder).as_posix() for p in sorted(Path(folder).rglob("*")) if p.is_file()]
    names = [n for n in names if "/." not in "/" + n and not n.endswith(".incomplete")]
    listing = [{"Path": n, "Size": 0} for n in names]
    keep = [e["path"] for e in _select(listing, "model", None)] or names
    return {rel: _sha256(Path(folder) / rel) for rel in keep}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# -- coco_2014_caption: its data lives outside the hub, at the URLs in its loading script ------
def _fetch_script_urls(snap: Snapshot, console=None) -> None:
    """Download the files a dataset's loading script lists in `_URLS` into <snapshot>/downloads/."""
    import ast

    console = console or _default_console()
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
            _download_url(url, dest, console)
        rel = dest.relative_to(snap.path).as_posix()
        snap.files[rel] = _sha256(dest)
        snap.sizes[rel] = dest.stat().st_size


def _download_url(url: str, dest: Path, console, timeout: float = 30.0) -> None:
    import requests

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    console.print(f"downloading {url}")
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


# -- progress ---------------------------------------------------------------------------------
class _Progress:
    """One bar of bytes (all files) plus one per file in flight; a few plain lines when piped.

    Fed by the client's progress callbacks, from its worker threads. A file that restarts (after
    a failed check, or a server that ignored Range) starts again from 0: the total stays right.
    """

    def __init__(self, console, what: str, total: int, n_files: int):
        self.console, self.what, self.total, self.n_files = console, what, max(total, 1), n_files
        self.lock = threading.Lock()
        self.done: dict[str, int] = {}
        self.finished: set[str] = set()
        self.started = time.monotonic()
        self.plain = not console.is_terminal
        self.next_mark = 25
        self.bar = None
        self.tasks: dict[str, Any] = {}
        if self.plain:
            console.print(f"downloading {what}: {n_files} files, {_fmt(total)}")
            return
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(), console=console)
        self.bar.start()
        self.main = self.bar.add_task(self._title(), total=self.total)

    def _title(self) -> str:
        return f"{self.what}  {len(self.finished)}/{self.n_files} files"

    def callback_class(self):
        from modelscope_hub import ProgressCallback

        progress = self

        class Callback(ProgressCallback):
            def __init__(self, filename: str, file_size: int):
                super().__init__(filename, file_size)
                progress.start_file(filename, file_size)

            def update(self, size: int) -> None:
                progress.advance(self.filename, size)

            def end(self) -> None:
                progress.end_file(self.filename)

        return Callback

    def start_file(self, name: str, size: int) -> None:
        with self.lock:
            self.done[name] = 0
            if self.bar is not None:
                if name in self.tasks:
                    self.bar.remove_task(self.tasks.pop(name))
                self.tasks[name] = self.bar.add_task(f"  {name}", total=max(size, 1))
            self._refresh()

    def advance(self, name: str, delta: int) -> None:
        with self.lock:
            self.done[name] = max(0, self.done.get(name, 0) + delta)
            if self.bar is not None and name in self.tasks:
                self.bar.update(self.tasks[name], completed=self.done[name])
            self._refresh()

    def end_file(self, name: str) -> None:
        with self.lock:
            self.finished.add(name)
            if self.bar is not None and name in self.tasks:
                self.bar.remove_task(self.tasks.pop(name))
            self._refresh()

    def _refresh(self) -> None:
        completed = min(sum(self.done.values()), self.total)
        if self.bar is not None:
            self.bar.update(self.main, completed=completed, description=self._title())
            return
        mark = completed * 100 // self.total // 25 * 25  # plain output: one line per quarter
        if self.next_mark <= mark < 100:
            self.console.print(f"  {mark}% ({_fmt(completed)} of {_fmt(self.total)})")
            self.next_mark = mark + 25

    def close(self) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.stop()
                self.bar = None


# -- the command ------------------------------------------------------------------------------
def cmd_download(args) -> int:
    """caption-wizard download MODEL_ID [--revision R] [--dataset [--subset S]]"""
    from wizard.console import console, console_err

    started = time.monotonic()
    if getattr(args, "dataset", False):
        snap = resolve_dataset_snapshot(args.model_id, getattr(args, "subset", None), args.revision,
                                        console=console_err)
    else:
        folder = Path(args.model_id).expanduser()
        if folder.is_dir():
            resolved = _resolve_local(args.model_id, folder)
            console.print(f"{args.model_id} is a local folder: nothing to download "
                          f"({len(resolved.files)} files, use model.source=local)")
            return 0
        _check_repo_id(args.model_id, "MODEL_ID")
        snap = fetch_snapshot(args.model_id, "model", revision=args.revision or "master", console=console_err)
    how = (f"downloaded {_fmt(snap.downloaded)} in {time.monotonic() - started:.1f} s"
           + (f" (resumed: {_fmt(snap.resumed)} were already here from an earlier try)" if snap.resumed else "")
           if snap.downloaded else "already in the cache (no download)")
    revision = snap.requested if snap.revision == snap.requested else f"{snap.requested} ({snap.revision})"
    from rich.markup import escape

    console.print(f"[green]✓[/] {escape(snap.repo_id)}: {how}")
    console.print(f"  revision  {revision}", markup=False)
    console.print(f"  files     {len(snap.files)} ({_fmt(snap.total_size)})", markup=False)
    console.print(f"  path      {snap.path}", soft_wrap=True, markup=False)
    return 0


# -- small helpers ----------------------------------------------------------------------------
def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _check_repo_id(repo_id: str, where: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise UserError(f"{where}={repo_id!r} is not a ModelScope id (owner/name) nor an existing folder",
                        hint="e.g. Qwen/Qwen2-VL-2B-Instruct, or a path to a local folder")


def _default_console():
    from wizard.console import console_err

    return console_err


def _fmt(n: int) -> str:
    size = float(max(n, 0))
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def _short(e: BaseException | Any) -> str:
    text = redact_url(" ".join(str(e).split())) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."

