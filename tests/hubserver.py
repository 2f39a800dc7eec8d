"""A small ModelScope hub on 127.0.0.1 for tests: the real modelscope client talks to it.

    server = HubServer().start()            # port 0: the OS picks a free port
    serve_folder_as_model(server, "owner/name", folder)
    os.environ["MODELSCOPE_ENDPOINT"] = server.endpoint
    ...
    server.file_requests()                  # what was downloaded (each request is logged)
    server.stop()                           # now the endpoint refuses connections

It speaks the part of the hub API the client uses (see shared/notes/modelscope.md):
    GET /api/v1/models/{owner}/{name}/repo/files?Revision=R&Recursive=True[&Root=dir]
    GET /api/v1/datasets/{owner}/{name}/repo/tree?Revision=R&Recursive=True&PageNumber=N&PageSize=M[&Root=dir]
    GET /api/v1/{models|datasets}/{owner}/{name}/repo?Revision=R&FilePath=path   (honours Range: bytes=N-)
    GET /api/v1/{models|datasets}/{owner}/{name}                                  (repo info)
    GET /static/{name}                                                           (plain files: zips, images)
Anything else, an unknown repo or an unknown revision: 404 with the hub's JSON error body.

Knobs for failure tests, per repo (`Repo`): `corrupt[path] = bytes` serves other bytes of the same
length than the listing's sha256 says; `cut_after[path] = n` closes the connection after n bytes on
the next request for that file (an interrupted download).
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

NOT_FOUND = {"Code": 10010205001, "Message": "not found", "Success": False}


@dataclass
class Repo:
    kind: str                      # "model" | "dataset"
    repo_id: str                   # "owner/name"
    files: dict[str, bytes]        # repo path -> content
    commit: str = ""               # 40 hex; computed from the content when empty
    branches: set[str] = field(default_factory=lambda: {"master"})
    corrupt: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    committed: int = 1_700_000_000

    def __post_init__(self):
        if not self.commit:
            h = hashlib.sha1(self.repo_id.encode())
            for path in sorted(self.files):
                h.update(path.encode() + b"\0" + hashlib.sha1(self.files[path]).digest())
            self.commit = h.hexdigest()

    def knows(self, revision: str) -> bool:
        return revision in self.branches or revision == self.commit

    def entries(self, root: str | None = None) -> list[dict]:
        """Listing entries (blobs, plus the folders as "tree" entries the client must skip)."""
        root = (root or "").strip("/")
        out, folders = [], set()
        for path in sorted(self.files):
            if root and not (path == root or path.startswith(root + "/")):
                continue
            data = self.files[path]
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                folders.add("/".join(parts[:i]))
            out.append({
                "Name": path.rsplit("/", 1)[-1], "Path": path, "Type": "blob", "Size": len(data),
                "Sha256": hashlib.sha256(data).hexdigest(), "Revision": self.commit,
                "CommittedDate": self.committed, "IsLFS": len(data) > 1_000_000, "Mode": "100644",
            })
        trees = [{"Name": f.rsplit("/", 1)[-1], "Path": f, "Type": "tree", "Size": 0,
                  "Revision": self.commit} for f in sorted(folders) if not root or f.startswith(root)]
        return trees + out


def folder_files(folder: str | Path) -> dict[str, bytes]:
    """Every file under `folder`, keyed by its path relative to it (forward slashes)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class HubServer:
    def __init__(self):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.static: dict[str, bytes] = {}
        self.log: list[dict] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.port = 0

    # -- life cycle ---------------------------------------------------------
    def start(self) -> "HubServer":
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- content ------------------------------------------------------------
    def add_repo(self, kind: str, repo_id: str, files: dict[str, bytes], **kw) -> Repo:
        repo = Repo(kind, repo_id, dict(files), **kw)
        self.repos[(kind, repo_id)] = repo
        return repo

    def url(self, static_name: str) -> str:
        return f"{self.endpoint}/static/{static_name}"

    # -- what happened ------------------------------------------------------
    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def requests(self, route: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.log if route is None or r["route"] == route]

    def file_requests(self) -> list[dict]:
        return self.requests("file")

    def _record(self, entry: dict) -> None:
        with self._lock:
            self.log.append(entry)


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server naming)
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [unquote(p) for p in url.path.split("/") if p]
        entry = {"path": url.path, "query": query, "range": self.headers.get("Range"),
                 "route": "other", "t": time.time()}
        try:
            self._route(parts, query, entry)
        finally:
            self.hub._record(entry)

    def _route(self, parts: list[str], query: dict, entry: dict) -> None:
        if parts[:1] == ["static"] and len(parts) >= 2:
            entry["route"] = "static"
            data = self.hub.static.get("/".join(parts[1:]))
            return self._bytes(data) if data is not None else self._json(404, NOT_FOUND)
        if parts[:2] != ["api", "v1"] or len(parts) < 5 or parts[2] not in ("models", "datasets"):
            return self._json(404, NOT_FOUND)
        kind = parts[2][:-1]
        repo = self.hub.repos.get((kind, f"{parts[3]}/{parts[4]}"))
        rest = parts[5:]
        if repo is None:
            return self._json(404, NOT_FOUND)
        if not rest:
            entry["route"] = "info"
            return self._json(200, {"Code": 200, "Success": True,
                                    "Data": {"Path": parts[3], "Name": parts[4], "Revision": repo.commit}})
        revision = query.get("Revision", "master")
        if not repo.knows(revision):
            return self._json(404, {**NOT_FOUND, "Message": f"revision {revision} not found"})
        if rest == ["repo", "files"] or rest == ["repo", "tree"]:
            entry["route"] = "list"
            entries = repo.entries(query.get("Root"))
            if rest[1] == "tree":  # datasets page through the tree
                size = int(query.get("PageSize", 200))
                page = int(query.get("PageNumber", 1))
                entries = entries[(page - 1) * size: page * size]
            return self._json(200, {"Code": 200, "Success": True, "Data": {"Files": entries}})
        if rest == ["repo"] and "FilePath" in query:
            entry["route"] = "file"
            path = query["FilePath"]
            if path not in repo.files:
                return self._json(404, NOT_FOUND)
            data = repo.corrupt.get(path, repo.files[path])
            return self._bytes(data, cut=repo.cut_after.pop(path, None), entry=entry)
        return self._json(404, NOT_FOUND)

    # -- replies ------------------------------------------------------------
    def _json(self, status: int, body: dict) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _bytes(self, data: bytes, cut: int | None = None, entry: dict | None = None) -> None:
        start, status = 0, 200
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes="):
            first = rng[len("bytes="):].split("-", 1)[0]
            start = int(first or 0)
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        if entry is not None:
            entry["status"] = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if cut is not None and cut < len(body):
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)


# -- fixtures' helpers ---------------------------------------------------------
def serve_folder_as_model(server: HubServer, repo_id: str, folder: str | Path, **kw) -> Repo:
    """Serve every file of `folder` as the model repo `repo_id` (a demo model, a tiny model...)."""
    return server.add_repo("model", repo_id, folder_files(folder), **kw)


def serve_folder_as_dataset(server: HubServer, repo_id: str, folder: str | Path, **kw) -> Repo:
    return server.add_repo("dataset", repo_id, folder_files(folder), **kw)


def tiny_safetensors(n_bytes: int, seed: int = 0) -> bytes:
    """A valid safetensors file holding one uint8 tensor of `n_bytes` pseudo-random bytes."""
    header = json.dumps({"weight": {"dtype": "U8", "shape": [n_bytes], "data_offsets": [0, n_bytes]}})
    header_bytes = header.encode().ljust((len(header) + 7) // 8 * 8)
    return struct.pack("<Q", len(header_bytes)) + header_bytes + random.Random(seed).randbytes(n_bytes)


# What a model folder needs to load, and what a real repo also carries that we must not download.
WANTED = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
          "tokenizer_config.json", "vocab.json", "merges.txt", "preprocessor_config.json",
          "chat_template.json", "configuration.json"]
UNWANTED = ["pytorch_model.bin", "onnx/model.onnx", "model-q4_k_m.gguf", "README.md", "assets/demo.jpg"]


def make_tiny_model(folder: str | Path, weight_bytes: int = 1_500_000) -> Path:
    """Write a tiny model repo: the files a run loads plus duplicates a download must skip."""
    folder = Path(folder)
    (folder / "onnx").mkdir(parents=True, exist_ok=True)
    (folder / "assets").mkdir(exist_ok=True)
    text = {
        "config.json": {"model_type": "qwen2_vl", "hidden_size": 8, "architectures": ["Qwen2VLForConditionalGeneration"]},
        "generation_config.json": {"max_new_tokens": 16},
        "tokenizer.json": {"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}}},
        "tokenizer_config.json": {"model_max_length": 64},
        "vocab.json": {"a": 0},
        "preprocessor_config.json": {"max_pixels": 3136},
        "chat_template.json": {"chat_template": "{{ messages }}"},
        "configuration.json": {"framework": "pytorch", "task": "image-text-to-text"},
    }
    for name, obj in text.items():
        (folder / name).write_text(json.dumps(obj))
    (folder / "merges.txt").write_text("#version: 0.2\na b\n")
    (folder / "model.safetensors").write_bytes(tiny_safetensors(weight_bytes))
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 4096)
    (folder / "onnx" / "model.onnx").write_bytes(b"\1" * 4096)
    (folder / "model-q4_k_m.gguf").write_bytes(b"\2" * 4096)
    (folder / "README.md").write_text("# tiny\n")
    (folder / "assets" / "demo.jpg").write_bytes(b"\3" * 100)
    return folder


def dead_endpoint() -> str:
    """An http endpoint on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
