"""What the data stage hands to training and evaluation: examples, a report, and image helpers.

    ex = Example("cats/001.png", Path("/data/pets/cats/001.png"), ["a grey cat", "一只灰猫"])
    load_image(ex)          # PIL RGB; raises BadImage (a UserError) naming the example if unreadable

Images stay where they are (a path, the bytes from a file, or a PIL image for the synthetic set)
and are decoded only when a batch needs them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from PIL import Image

from wizard.errors import UserError

ImageSource = Union[Image.Image, Path, bytes]


@dataclass
class Example:
    """One image and every caption written for it (all are training targets and eval references)."""

    id: str  # stable across machines: a path relative to the dataset, or a content digest
    image: ImageSource = field(repr=False)
    captions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BadRow:
    where: str  # "metadata.jsonl:7", "captions.json annotations[12]", "train.parquet row 3"
    reason: str  # "image not found: cats/007.png"

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class DataReport:
    source: str  # the resolved file/folder, or the dataset id
    format: str  # the adapter that read it
    file: str  # the file the rows came from (named in errors)
    detected: bool  # True: format found by auto-detection; False: set in data.format
    rows_read: int = 0
    images: int = 0
    captions: int = 0
    bad_rows: int = 0
    bad_by_reason: dict[str, int] = field(default_factory=dict)  # "image not found" -> 3
    first_bad: list[BadRow] = field(default_factory=list)  # the first few, in file order
    language_guess: str = "en"  # en | zh | mixed
    num_train: int = 0
    num_eval: int = 0
    capped_from: int | None = None  # images before data.max_samples cut them down
    notes: list[str] = field(default_factory=list)  # worth a warning: the data may not be what was meant
    info: list[str] = field(default_factory=list)  # how it was read: columns, folders, splits

    def lines(self) -> list[str]:
        """A short human summary, one line per item (printed by the runner / the wizard)."""
        fmt = self.format + ("" if not self.detected else " (detected)")
        out = [f"data: {self.source} — {fmt}",
               f"  {self.images:,} images, {self.captions:,} captions from {self.rows_read:,} rows; "
               f"{self.num_train:,} train / {self.num_eval:,} eval; captions look {_LANG_NAMES[self.language_guess]}"]
        if self.capped_from:
            out.append(f"  data.max_samples kept {self.images:,} of {self.capped_from:,} images")
        if self.bad_rows:
            why = ", ".join(f"{k}: {v}" for k, v in sorted(self.bad_by_reason.items(), key=lambda kv: -kv[1]))
            out.append(f"  skipped {self.bad_rows:,} bad rows ({why}), e.g.:")
            out.extend(f"    {b}" for b in self.first_bad)
        out.extend(f"  {i}" for i in self.info)
        out.extend(f"  note: {n}" for n in self.notes)
        return out

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["first_bad"] = [str(b) for b in self.first_bad]
        return d


_LANG_NAMES = {"en": "English", "zh": "Chinese", "mixed": "mixed (English and Chinese or other)"}


@dataclass
class CaptionSet:
    train: list[Example]
    eval: list[Example]
    report: DataReport
    fingerprint: str  # sha256 hex over ids + captions + image content digests
    digests: dict[str, str] = field(default_factory=dict, repr=False)  # example id -> image sha256
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)  # example id -> (w, h)

    @property
    def examples(self) -> list[Example]:
        return self.train + self.eval


# ----------------------------------------------------------------------------- images
class BadImage(UserError):
    """An image that cannot be decoded (found while loading a batch or while checking the data)."""


def load_image(example: Example | ImageSource) -> Image.Image:
    """Decode an example's image to RGB by wizard.images' rules (EXIF orientation, 16-bit, alpha)."""
    from wizard.images import ImageProblem, load_rgb

    src = example.image if isinstance(example, Example) else example
    name = example.id if isinstance(example, Example) else _describe(src)
    try:
        return load_rgb(src)
    except FileNotFoundError:
        raise BadImage(f"image of example {name!r} not found: {src}",
                       hint="the file was moved or deleted after the data was checked") from None
    except (ImageProblem, OSError) as e:
        where = f" ({src})" if isinstance(src, (str, Path)) else ""
        raise BadImage(f"image of example {name!r}{where} cannot be decoded: {e}",
                       hint="remove this image or its row from the dataset, or replace the file") from None


def _describe(src) -> str:
    if isinstance(src, (bytes, bytearray)):
        return f"<{len(src)} bytes>"
    return str(src)


def image_digest(img: Image.Image) -> str:
    """Content digest of an in-memory image (mode, size and pixels)."""
    h = hashlib.sha256(f"{img.mode}:{img.size[0]}x{img.size[1]}:".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def check_image_bytes(data: bytes) -> tuple[str | None, str | None]:
    """(sha256 hex, None) for a readable image, (None, reason) otherwise (see inspect_image_bytes)."""
    digest, reason, _ = inspect_image_bytes(data)
    return digest, reason


def inspect_image_bytes(data: bytes) -> tuple[str | None, str | None, tuple[int, int] | None]:
    """(sha256 hex, None, (width, height) as trained) for an image that decodes, (None, reason, None)
    otherwise (wizard.images.inspect_bytes: decoded, not only verified; bombs refused unread)."""
    from wizard.images import inspect_bytes

    size, reason = inspect_bytes(data)
    if reason:
        return None, reason, None
    return hashlib.sha256(data).hexdigest(), None, size


def check_image_file(path: Path) -> tuple[str | None, str | None]:
    digest, reason, _ = inspect_image_file(path)
    return digest, reason


def inspect_image_file(path: Path) -> tuple[str | None, str | None, tuple[int, int] | None]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "image not found", None
    except IsADirectoryError:
        return None, "image path is a folder", None
    except OSError as e:
        return None, f"image cannot be read ({e.strerror or e})", None
    return inspect_image_bytes(data)


# ----------------------------------------------------------------------------- image references in text
_B64 = re.compile(r"[A-Za-z0-9+/=\s_-]+")


class RowProblem(Exception):
    """Raised by a reader for one row; becomes a BadRow with this message."""


class ImageUrl(str):
    """An http(s) image reference read from a data file; wizard/data/urls.py turns it into a cached Path."""


def image_from_string(text: str, base: Path) -> Path | bytes:
    """An image reference as written in a data file: a path (relative to `base`), a file:// URL,
    a base64 data URI, a bare base64 string, or an http(s) URL (an ImageUrl, fetched later)."""
    s = text.strip()
    if not s:
        raise RowProblem("empty image path")
    if s.startswith("data:"):
        head, sep, payload = s.partition(",")
        if not sep or ";base64" not in head:
            raise RowProblem("data URI is not base64 (expected data:image/...;base64,...)")
        return _b64decode(payload, "data URI")
    if s.startswith(("http://", "https://")):
        return ImageUrl(s)  # downloaded into the cache by wizard/data/urls.py before checking
    if s.startswith("file://"):
        s = s[len("file://"):]
    if len(s) >= 64 and "." not in s[-8:] and _B64.fullmatch(s[:4096]):  # bare base64 (M3IT); paths have a suffix
        try:
            return _b64decode(s, "base64 image")
        except RowProblem:
            pass
    path = Path(s).expanduser()
    return path if path.is_absolute() else base / path


def _b64decode(payload: str, what: str) -> bytes:
    try:
        payload = "".join(payload.split())
        if "-" in payload or "_" in payload:
            return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise RowProblem(f"{what} is not valid base64") from None


# ----------------------------------------------------------------------------- language
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


def guess_language(captions: list[str]) -> str:
    """en | zh | mixed, from (up to 2,000 of) the captions."""
    sample = captions[:2000]
    if not sample:
        return "en"
    votes = Counter("zh" if _CJK.search(c) else "en" if _LATIN.search(c) else "other" for c in sample)
    lang, count = votes.most_common(1)[0]
    return lang if lang != "other" and count > 0.8 * len(sample) else "mixed"


def fingerprint(examples: list[Example], digests: dict[str, str]) -> str:
    """sha256 over (id, image digest, captions) of the examples, sorted by id."""
    h = hashlib.sha256()
    for ex in sorted(examples, key=lambda e: e.id):
        # surrogatepass: an id from a file name that is not UTF-8 (surrogateescape) hashes too
        h.update(ex.id.encode("utf-8", "surrogatepass") + b"\x00" + digests[ex.id].encode() + b"\x00")
        h.update("\x1f".join(ex.captions).encode("utf-8", "surrogatepass") + b"\n")
    return h.hexdigest()
