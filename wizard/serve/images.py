"""Images from OpenAI `image_url` content parts: data URIs, http(s) URLs and local paths.

Everything a client can get wrong raises BadRequest (HTTP 400 with the message): bad base64, a file that
is not an image, an image too large to caption, an unreachable URL.
"""

from __future__ import annotations

import base64
import binascii
import io
import urllib.error
import urllib.request
import warnings
from pathlib import Path

FETCH_TIMEOUT_S = 10.0


class BadRequest(Exception):
    """A client error: answered with `status` and {"error": {"message": ...}}."""

    def __init__(self, message: str, status: int = 400, param: str | None = None):
        super().__init__(message)
        self.message, self.status, self.param = message, status, param


def read_image_url(url: str, *, max_pixels: int, max_bytes: int):
    """The image at `url` as a decoded PIL RGB image."""
    if not isinstance(url, str) or not url.strip():
        raise BadRequest("image_url.url is empty", param="messages")
    url = url.strip()
    if url.startswith("data:"):
        raw = _data_uri(url)
    elif url.startswith(("http://", "https://")):
        raw = _fetch(url, max_bytes)
    else:
        raw = _local(url, max_bytes)
    return decode_image(raw, max_pixels=max_pixels)


def _data_uri(url: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise BadRequest("image_url: a data URI must look like data:image/png;base64,<base64 data>")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequest(f"image_url: the data URI's base64 is invalid ({e})") from None


def _fetch(url: str, max_bytes: int) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "caption-wizard-serve"})
    try:
        with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT_S) as resp:
            raw = resp.read(max_bytes + 1)
    except urllib.error.HTTPError as e:
        raise BadRequest(f"image_url {url}: the server answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise BadRequest(f"image_url {url}: could not fetch it ({reason})") from None
    if len(raw) > max_bytes:
        raise BadRequest(f"image_url {url}: larger than {max_bytes // 2**20} MiB")
    return raw


def _local(url: str, max_bytes: int) -> bytes:
    path = Path(url.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise BadRequest(f"image_url {url}: not a data URI, an http(s) URL or an existing file on the server")
    if path.stat().st_size > max_bytes:
        raise BadRequest(f"image_url {url}: larger than {max_bytes // 2**20} MiB")
    try:
        return path.read_bytes()
    except OSError as e:
        raise BadRequest(f"image_url {url}: cannot read it ({e.strerror})") from None


def decode_image(raw: bytes, *, max_pixels: int):
    """PIL RGB image, fully decoded; the size is checked from the header before any pixel is decoded."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is below
            im = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as e:
        raise BadRequest(f"image is too large to caption ({e})") from None
    except Exception as e:  # UnidentifiedImageError, OSError, SyntaxError...: PIL raises many kinds
        raise BadRequest(f"cannot read the image: not an image file PIL can open ({type(e).__name__})") from None
    w, h = im.size
    if w * h > max_pixels:
        raise BadRequest(f"image is {w}x{h} ({w * h / 1e6:.1f} megapixels); this server takes images up to "
                         f"{max_pixels / 1e6:g} megapixels (serve --max-image-megapixels)")
    try:
        im.load()
        return im.convert("RGB")
    except Exception as e:  # truncated or corrupt pixel data
        raise BadRequest(f"cannot decode the image ({e})") from None
