"""The one image loader: data checks, training, caption, eval and serve all read images here.

    size, problem = inspect_bytes(data)          # the data check: ((w, h) as trained, None) or (None, why)
    rgb = load_rgb(path_or_bytes)                 # PIL RGB, fully decoded, converted by the rules below
    rgb = load_rgb(src, shrink_to=16_000_000)     # caption/serve: a huge photo shrunk while decoding
    size_problem((1200, 3), limits_for(model))    # "aspect ratio too extreme (400:1; ...)" or None

Rules, the same everywhere (README "What happens when…"):
- EXIF orientation is applied once, when decoding; the size `data` reports is the rotated one.
- 16-bit and 32-bit greyscale (I;16, I, F) is scaled to 8 bits, not clipped (a 16-bit PNG's
  mid-grey stays mid-grey); 16-bit RGB(A) PNGs Pillow already reads as 8 bits per channel.
- Transparency (RGBA, LA, PA, palette or greyscale with a transparent colour) is composited over
  white, as the Qwen2-VL processor's own convert_rgb does; CMYK goes through its ICC profile when
  it has one; every other mode through Pillow's convert("RGB").
- Only raster formats are opened (FORMATS): never EPS/PDF (Ghostscript) or formats nobody captions.
- The pixel count is checked from the header, before any pixel is decoded (decompression bombs).
Problems raise ImageProblem("kind (detail)"), which callers name with the image. Torch-free.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

# What Image.open may read. Pillow's full list includes EPS (runs Ghostscript), PDF and formats no
# caption data set uses; an unlisted format is "not an image file" like any other non-image.
# (MPO, phones' multi-picture JPEG, comes through the JPEG opener; HEIF needs the pillow-heif plugin.)
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "ICO", "PPM", "TGA", "JPEG2000", "AVIF", "HEIF",
           "QOI", "PCX", "SGI")
BOMB_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485  # Pillow's own warning threshold (about 89.5 megapixels)
_SWAPPED = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 degrees: width and height trade places


class ImageProblem(Exception):
    """Why an image cannot be used, as "kind (detail)"; the caller adds which image it is."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ----------------------------------------------------------------------------- opening and decoding
def open_image(src, *, max_pixels: int = BOMB_PIXELS) -> Image.Image:
    """A lazily decoded PIL image (header read, no pixels) of a path or encoded bytes.
    Raises ImageProblem for what is not an image of FORMATS, or is larger than `max_pixels`."""
    fp = io.BytesIO(src) if isinstance(src, (bytes, bytearray, memoryview)) else src
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is below
            im = Image.open(fp, formats=_formats())
    except Image.DecompressionBombError as e:
        raise ImageProblem(f"image too large ({_short(e)})") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # noqa: BLE001 - UnidentifiedImageError, OSError, SyntaxError, struct.error...
        raise ImageProblem(f"not a readable image ({_short(e)})") from None
    w, h = im.size
    if w <= 0 or h <= 0:
        im.close()
        raise ImageProblem(f"not a readable image (its size is {w}x{h})")
    if w * h > max_pixels:
        im.close()
        raise ImageProblem(f"image too large ({w}x{h} = {w * h / 1e6:.1f} megapixels; at most "
                           f"{max_pixels / 1e6:g} are decoded)")
    return im


def _formats() -> tuple[str, ...]:
    Image.init()  # Image.open(formats=...) names only openers that are registered
    return tuple(f for f in FORMATS if f in Image.OPEN)


def oriented_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) after the EXIF orientation is applied: the size training sees."""
    w, h = im.size
    return (h, w) if _orientation(im) in _SWAPPED else (w, h)


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block: no rotation, like a viewer that cannot read it
        return 1


def to_rgb(im: Image.Image) -> Image.Image:
    """A decoded image converted to RGB by the rules of this module (orientation applied once)."""
    if _orientation(im) != 1:
        try:
            im = ImageOps.exif_transpose(im)  # the result carries no orientation tag: never rotated twice
        except Exception:  # noqa: BLE001, S110 - an EXIF block Pillow cannot apply: the pixels as stored
            pass
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _to_8bit(im).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA") if mode != "La" else im.convert("RGBa").convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if mode == "CMYK" and im.info.get("icc_profile"):
        rgb = _icc_to_srgb(im)
        if rgb is not None:
            return rgb
    return im.convert("RGB")


def _to_8bit(im: Image.Image) -> Image.Image:
    """Greyscale of more than 8 bits as L: I;16 scaled from 0..65535; I from 0..65535 unless it is
    8-bit data already, else from its own range; F from 0..1 (or 0..255), else from its own range."""
    import numpy as np

    a = np.asarray(im)
    if im.mode.startswith("I;16"):
        return Image.fromarray(((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8), "L")
    a = np.nan_to_num(a.astype(np.float64))
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255
    elif lo >= 0 and hi <= 255:
        pass
    elif im.mode == "I" and lo >= 0 and hi <= 65535:
        a = a * 255 / 65535
    else:
        a = (a - lo) * 255 / ((hi - lo) or 1)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def _icc_to_srgb(im: Image.Image) -> Image.Image | None:
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
        return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception:  # noqa: BLE001 - no littlecms, or a profile it cannot use: the plain conversion
        return None


def load_rgb(src, *, max_pixels: int = BOMB_PIXELS, shrink_to: int | None = None) -> Image.Image:
    """The image as PIL RGB, fully decoded (a truncated file fails here, not inside the model).
    `src`: a path, encoded bytes or a PIL image. `shrink_to`: at most that many pixels (a JPEG is
    decoded at a reduced scale, draft mode; others are reduced after decoding)."""
    if isinstance(src, Image.Image):
        rgb = to_rgb(src)
        return rgb.copy() if rgb is src else rgb
    im = open_image(src, max_pixels=max_pixels)
    try:
        with im:
            w, h = im.size
            if shrink_to and w * h > shrink_to and im.format == "JPEG":
                scale = (shrink_to / (w * h)) ** 0.5
                im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))  # whole 1/2..1/8 scales
            im.load()
            rgb = to_rgb(im)
            if rgb is im:
                rgb = im.copy()  # `with` closes the file's image; the copy outlives it
    except ImageProblem:
        raise
    except Exception as e:  # noqa: BLE001 - truncated or corrupt pixel data, an unconvertible mode
        raise ImageProblem(f"cannot decode the image ({_short(e)})") from None
    w, h = rgb.size
    if shrink_to and w * h > shrink_to:
        scale = (shrink_to / (w * h)) ** 0.5
        rgb = rgb.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.BICUBIC,
                         reducing_gap=2.0)
    return rgb


def inspect_bytes(data: bytes, *, max_pixels: int = BOMB_PIXELS) -> tuple[tuple[int, int] | None, str | None]:
    """((width, height) as trained, None) for an image that decodes, (None, reason) otherwise.

    Image.verify() alone reads headers and checksums, so a truncated JPEG passes it; so the image is
    decoded too, a JPEG at 1/8 scale (draft mode: libjpeg's DCT scaling still reads every byte of
    the entropy-coded data, so truncation is caught) which costs about a third of a full decode."""
    if not data:
        return None, "empty image file"
    try:
        with open_image(data, max_pixels=max_pixels) as im:
            im.verify()
        with open_image(data, max_pixels=max_pixels) as im:
            w, h = im.size
            size = oriented_size(im)  # before draft(), which makes im.size the reduced one
            if im.format == "JPEG":
                im.draft("RGB", (max(1, w // 8), max(1, h // 8)))
            im.load()
    except ImageProblem as e:
        return None, e.reason
    except Exception as e:  # noqa: BLE001 - Pillow raises many kinds for bad data
        return None, f"not a readable image ({_short(e)})"
    return size, None


def _short(e: Exception) -> str:
    import re

    text = re.sub(r"\s*<[^>]*>", "", str(e)).strip() or e.__class__.__name__  # drop "<_io.BytesIO ...>"
    return text if len(text) < 80 else text[:77] + "..."


# ----------------------------------------------------------------------------- what the processor takes
@dataclass(frozen=True)
class ImageLimits:
    """Image shapes the model's processor refuses, checked by `data` so a run never meets them."""

    max_aspect_ratio: float = 200.0
    who: str = "the image processor"  # named in the message


# transformers' smart_resize (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, GLM-4V image processors) raises "absolute aspect
# ratio must be smaller than 200" above 200:1, inside a DataLoader worker; other processors resize such an image
# to a giant first. The limit is a field of the family table (wizard.families.Family.max_aspect_ratio).
DEFAULT_LIMITS = ImageLimits(200.0, "the image processor")  # unknown families: the strictest known limit


def limits_for(model) -> ImageLimits:
    """The limits of a recipe's model (a ModelSpec, an id or None: the safe default)."""
    from wizard.catalog import model_info

    model_id = getattr(model, "id", model)
    if not model_id:
        return DEFAULT_LIMITS
    from wizard.families import FAMILIES

    family = model_info(str(model_id)).family
    if family not in FAMILIES:
        family = _config_family(Path(str(model_id)).expanduser())
    fam = FAMILIES.get(family)
    return DEFAULT_LIMITS if fam is None else ImageLimits(fam.max_aspect_ratio, f"{fam.title}'s image processor")


def _config_family(folder: Path) -> str:
    import json

    try:
        return str(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def size_problem(size: tuple[int, int], limits: ImageLimits = DEFAULT_LIMITS) -> str | None:
    """None when the processor takes an image of this (oriented) size, else "kind (detail)"."""
    w, h = size
    ratio = max(w, h) / max(1, min(w, h))
    if ratio > limits.max_aspect_ratio:
        return (f"aspect ratio too extreme ({w}x{h} is {ratio:.0f}:1; {limits.who} refuses more than "
                f"{limits.max_aspect_ratio:g}:1)")
    return None
