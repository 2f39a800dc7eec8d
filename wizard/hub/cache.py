"""The download cache on disk: which files of a repo a run keeps, where they lie, our manifests.

    snap = cached_snapshot("model", "Qwen/Qwen2-VL-2B-Instruct", "master")   # None: not (all) there
    cached_download_size("model", repo_id, "master")                          # bytes, or None
    hash_folder(folder)                                                       # {relative path: sha256}

The layout is modelscope's (the client writes the files): <cache>/<type>s/<owner>--<name>/snapshots/
<revision>/<path>, a partial file as <path>.incomplete. Next to the snapshots we keep one small
manifest per complete download (<cache>/<type>s/<owner>--<name>/.caption-wizard/<revision>.<key>.json,
key: the file selection) with the resolved revision and every file's sha256, size and mtime: a later
call that finds the files unchanged needs no network at all. The cache root is wizard.paths'
download_root() (CAPTION_WIZARD_CACHE, else MODELSCOPE_CACHE).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from wizard.paths import download_root

# What a run needs from a model repo. Weights: safetensors; .bin/.pth only when a repo has no
# safetensors at all (older repos).
MODEL_PATTERNS = [
    "*.safetensors", "*.json", "*.txt", "*.model", "*.tiktoken", "*.jinja", "*.py",
    "tokenizer*", "vocab*", "merges*", "chat_template*",
]
MODEL_IGNORE = ["onnx/*", "*.onnx", "*.onnx_data", "*.gguf", "*.msgpack", "*.h5", "*.ckpt",
                "*.ot", "openvino/*", "coreml/*", "*.mlmodel", "*.tflite"]
LEGACY_WEIGHTS = ["*.bin", "*.pth", "*.pt"]


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


def cache_root() -> Path:
    """Where model and dataset downloads go (wizard.paths.download_root)."""
    return download_root()


# -- which files ------------------------------------------------------------------------------
def select(listing: list[dict], repo_type: str, patterns: list[str] | None) -> list[dict]:
    """The entries of a hub listing we keep: {path, size, sha256, raw}. A model with no config.json: []."""
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
        keep = [b for b in blobs if match(b["path"], allow) and not match(b["path"], MODEL_IGNORE)]
        if not any(b["path"].endswith("config.json") for b in keep):
            return []
        return keep
    return [b for b in blobs if match(b["path"], patterns or ["*"])]


def match(path: str, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(path, p) or ("/" not in p and fnmatch.fnmatch(name, p)) for p in patterns)


def selection_key(patterns: list[str] | None) -> str:
    """Names the file selection in a manifest's name (None: a model's run files)."""
    return hashlib.sha256(json.dumps(patterns or "model").encode()).hexdigest()[:10]


# -- layout -----------------------------------------------------------------------------------
def repo_root(repo_type: str, repo_id: str, cache: Path | None = None) -> Path:
    return Path(cache or cache_root()) / f"{repo_type}s" / repo_id.replace("/", "--")


def in_cache(repo_type: str, repo_id: str) -> bool:
    """Has anything of this repo been downloaded (by us or another ModelScope tool)?"""
    return repo_root(repo_type, repo_id).is_dir()


def snapshot_dir(repo_type: str, repo_id: str, revision: str, cache: Path) -> Path:
    """Where the client puts (or finds) the files: its old layout when one exists, else the standard."""
    owner, name = repo_id.split("/", 1)
    for legacy in (Path(cache) / f"{repo_type}s" / owner / name.replace(".", "___"),
                   Path(cache) / "hub" / f"{repo_type}s" / owner / name.replace(".", "___")):
        if legacy.is_dir() and any(legacy.iterdir()):
            return legacy
    return repo_root(repo_type, repo_id, cache) / "snapshots" / revision


def partial_size(path: Path) -> int:
    """Bytes of `path` already fetched into its .incomplete file (resumed with a Range request)."""
    try:
        return path.with_name(path.name + ".incomplete").stat().st_size
    except OSError:
        return 0


# -- manifests --------------------------------------------------------------------------------
def manifest_path(repo_type, repo_id, revision, key, cache) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in revision)
    return repo_root(repo_type, repo_id, cache) / ".caption-wizard" / f"{safe}.{key}.json"


def read_manifest(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None
    except (OSError, ValueError):
        return None


def write_manifest(snap: Snapshot, key: str, cache: Path) -> None:
    from wizard.fsutil import atomic_write_json

    files = {}
    for rel, sha in snap.files.items():
        st = (snap.path / rel).stat()
        files[rel] = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    data = {"repo_id": snap.repo_id, "repo_type": snap.repo_type, "requested": snap.requested,
            "revision": snap.revision, "path": str(snap.path), "endpoint": snap.endpoint,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "files": files}
    with contextlib.suppress(OSError):  # a read-only cache still works, just without the shortcut
        atomic_write_json(manifest_path(snap.repo_type, snap.repo_id, snap.requested, key, cache), data)


def cached_snapshot(repo_type: str, repo_id: str, revision: str, key: str | None = None,
                    cache: Path | None = None) -> Snapshot | None:
    """A complete earlier download of this selection at `revision` (a branch or the commit it pinned).
    `key`: selection_key(patterns), default a model's run files."""
    key = key or selection_key(None)
    cache = Path(cache) if cache is not None else cache_root().resolve()
    exact = manifest_path(repo_type, repo_id, revision, key, cache)
    candidates = [exact] + sorted(p for p in exact.parent.glob(f"*.{key}.json") if p != exact)
    for path in candidates:
        data = read_manifest(path)
        if not data or (path != exact and data.get("revision") != revision):
            continue
        folder = Path(data.get("path", ""))
        if folder.is_dir() and all(file_ok(folder / rel, rec) for rel, rec in data["files"].items()):
            files = {rel: rec["sha256"] for rel, rec in data["files"].items()}
            sizes = {rel: int(rec["size"]) for rel, rec in data["files"].items()}
            return Snapshot(folder, repo_id, repo_type, data.get("requested", revision),
                            data.get("revision") or revision, files, sizes, 0, data.get("endpoint", ""))
    return None


def cached_download_size(repo_type: str, repo_id: str, revision: str) -> int | None:
    """Bytes of an earlier complete download of `revision` (asked for by that name or its commit),
    from our manifests alone (no file is checked); None when there is none."""
    root = repo_root(repo_type, repo_id)
    for path in sorted((root / ".caption-wizard").glob("*.json")) if root.is_dir() else []:
        data = read_manifest(path)
        if data and data.get("requested") in (revision, data.get("revision")):
            return sum(int(rec.get("size", 0)) for rec in data["files"].values())
    return None


def file_ok(path: Path, rec: dict) -> bool:
    """Same size, and same bytes: re-hashed only when the file changed since we recorded it."""
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_size != rec.get("size"):
        return False
    if st.st_mtime_ns == rec.get("mtime_ns") or not rec.get("sha256"):
        return True
    return sha256_file(path) == rec["sha256"]


def have(out_dir: Path, entry: dict, previous: dict | None) -> bool:
    """Is this listed file already in place and intact (so it need not be downloaded)?"""
    target = out_dir / entry["path"]
    rec = (previous or {}).get("files", {}).get(entry["path"])
    if rec and rec.get("sha256") == entry["sha256"]:
        return file_ok(target, rec)
    try:
        if target.stat().st_size != entry["size"]:
            return False
    except OSError:
        return False
    return not entry["sha256"] or sha256_file(target) == entry["sha256"]


# -- snapshots without a manifest -------------------------------------------------------------
def usable_cache_without_manifest(repo_type, repo_id, revision, cache) -> Snapshot | None:
    """A snapshot another tool (or an older run) left, complete by the look of it: ok offline."""
    folder = snapshot_dir(repo_type, repo_id, revision, cache)
    if not folder.is_dir() or any(folder.rglob("*.incomplete")):
        return None
    if repo_type == "model" and not looks_complete(folder):
        return None
    files = hash_folder(folder)
    if not files:
        return None
    sizes = {rel: (folder / rel).stat().st_size for rel in files}
    return Snapshot(folder, repo_id, repo_type, revision, revision, files, sizes)


def looks_complete(folder: Path) -> bool:
    if not (folder / "config.json").is_file():
        return False
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        with contextlib.suppress(OSError, ValueError):
            shards = set(json.loads(index.read_text()).get("weight_map", {}).values())
            return all((folder / s).is_file() for s in shards)
        return False
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


# -- hashing ----------------------------------------------------------------------------------
def hash_folder(folder: Path) -> dict[str, str]:
    """sha256 of the files a run uses (same selection as a download), skipping duplicates."""
    names = [p.relative_to(folder).as_posix() for p in sorted(Path(folder).rglob("*")) if p.is_file()]
    names = [n for n in names if "/." not in "/" + n and not n.endswith(".incomplete")]
    listing = [{"Path": n, "Size": 0} for n in names]
    keep = [e["path"] for e in select(listing, "model", None)] or names
    return {rel: sha256_file(Path(folder) / rel) for rel in keep}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
