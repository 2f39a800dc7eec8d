"""The one image loader (wizard/images.py): every mode converted as it should be, in data, training,
caption and serve alike; shapes the processor refuses named by `data` (issue 24)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import cli_env, run_cli
from tests.fixtures_data import caption, write_png
from wizard.caption import read_image
from wizard.data import Example, load_caption_set, load_image
from wizard.recipe import DataSpec
from wizard.serve.images import decode_image


def encoded(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png16(a: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG written byte by byte (Pillow writes 16-bit greyscale, not 16-bit RGB)."""
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def every_loader(data: bytes, tmp_path: Path) -> dict[str, Image.Image]:
    """The image as data/training, caption and serve decode it."""
    path = tmp_path / "im.bin"
    path.write_bytes(data)
    return {"data": load_image(Example("x", path, ["c"])), "embedded": load_image(Example("x", data, ["c"])),
            "caption": read_image(path), "serve": decode_image(data, max_pixels=10**8)}


def test_a_16_bit_greyscale_png_keeps_its_grey_everywhere(tmp_path):
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0..65520, mean 32760
    data = encoded(Image.fromarray(ramp))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    for who, im in every_loader(data, tmp_path).items():
        a = np.asarray(im)
        assert im.mode == "RGB" and abs(a.mean() - ramp.mean() / 257) < 1, (who, a.mean())  # 127, not 254
        assert a[0, 0, 0] == 0 and a[-1, -1, 0] == 255


def test_16_bit_rgb_and_grey_alpha_pngs(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 65535, 32896, 257
    grey_alpha = np.zeros((4, 4, 2), np.uint16)
    grey_alpha[..., 0], grey_alpha[..., 1] = 0, 0  # black, fully transparent: white
    for data, want in ((png16(rgb, 2), (255, 128, 1)), (png16(grey_alpha, 4), (255, 255, 255))):
        for who, im in every_loader(data, tmp_path).items():
            assert im.getpixel((1, 1)) == want, who


def test_32_bit_int_and_float_greyscale_are_scaled():
    from wizard.images import to_rgb

    assert to_rgb(Image.fromarray(np.full((2, 2), 65535, np.int32), "I")).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.fromarray(np.full((2, 2), 200, np.int32), "I")).getpixel((0, 0)) == (200, 200, 200)
    assert to_rgb(Image.fromarray(np.full((2, 2), 0.5, np.float32), "F")).getpixel((0, 0)) == (128, 128, 128)


def test_transparency_goes_over_white_and_cmyk_becomes_rgb(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    la = Image.new("LA", (4, 4), (0, 0))  # black, fully transparent
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 128))  # half-transparent red
    cases = [(encoded(palette, transparency=0), {(0, 0): (255, 255, 255), (1, 1): (255, 0, 0)}),
             (encoded(la), {(0, 0): (255, 255, 255)}),
             (encoded(rgba), {(0, 0): (255, 127, 127)}),
             (encoded(Image.new("CMYK", (4, 4), (255, 0, 0, 0)), "JPEG", quality=100), {(0, 0): (0, 255, 255)}),
             (encoded(Image.new("L", (4, 4), 7), "GIF", transparency=7), {(0, 0): (255, 255, 255)})]
    for data, pixels in cases:
        for who, im in every_loader(data, tmp_path).items():
            for xy, want in pixels.items():
                got = im.getpixel(xy)
                assert max(abs(g - w) for g, w in zip(got, want)) <= 3, (who, xy, got, want)


def _rotated_jpeg(path: Path) -> None:
    """40x20 pixels as stored, left half red, and EXIF orientation 6: shown (and trained) as 20x40."""
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(path, "JPEG", exif=exif.tobytes(), quality=95)


def test_exif_orientation_is_the_same_in_data_and_in_training(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    _rotated_jpeg(folder / "turned.jpg")
    for i in range(3):
        write_png(folder / f"{i}.png", i)
    (folder / "metadata.jsonl").write_text("".join(
        json.dumps({"file_name": n, "text": caption(2)}) + "\n" for n in ["turned.jpg", "0.png", "1.png", "2.png"]))
    cs = load_caption_set(DataSpec(dataset=str(folder), eval_fraction=0), seed=0)
    for ex in cs.examples:
        assert cs.sizes[ex.id] == load_image(ex).size, ex.id  # what `data` reports is what trains
    turned = next(ex for ex in cs.examples if ex.id == "turned.jpg")
    assert cs.sizes["turned.jpg"] == (20, 40)
    im = load_image(turned)
    assert im.getpixel((10, 5))[0] > 200 and im.getpixel((10, 35))[2] > 200  # red on top: rotated once
    assert read_image(folder / "turned.jpg").size == (20, 40)  # caption sees it the same way


def test_data_names_images_the_processor_would_refuse(tmp_path):
    folder = tmp_path / "strips"
    folder.mkdir()
    rows = []
    for i in range(30):
        write_png(folder / f"{i:02d}.png", i)
        rows.append({"file_name": f"{i:02d}.png", "text": caption(2 * i)})
    Image.new("RGB", (1200, 3), (9, 9, 9)).save(folder / "strip.png")  # 400:1, Qwen2-VL refuses above 200:1
    Image.new("1", (10_000, 10_000)).save(folder / "bomb.png")  # 100 megapixels in a few kilobytes
    rows += [{"file_name": "strip.png", "text": "a thin strip"}, {"file_name": "bomb.png", "text": "big"}]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = cli_env(CAPTION_WIZARD_CACHE=str(tmp_path / "cache"))
    for _ in range(2):  # the second time from the index
        proc = run_cli("data", str(folder), cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = " ".join(proc.stdout.split())
        assert "strip.png: aspect ratio too extreme (1200x3 is 400:1; Qwen2-VL's image processor refuses more " \
               "than 200:1)" in out, out
        assert "metadata.jsonl:32: image too large: bomb.png (10000x10000 = 100.0 megapixels" in out
        assert "30 images" in out
    spec = DataSpec(dataset=str(folder))
    assert "strip.png" not in {ex.id for ex in load_caption_set(spec, seed=0).examples}


def test_the_aspect_limit_comes_from_the_model_family():
    from wizard.images import DEFAULT_LIMITS, limits_for, size_problem

    assert limits_for("Qwen/Qwen2.5-VL-3B-Instruct").who == "Qwen2.5-VL's image processor"
    assert limits_for(None) == DEFAULT_LIMITS and limits_for("someone/unknown-model") == DEFAULT_LIMITS
    assert size_problem((600, 3)) is None and size_problem((603, 3)) is not None  # 200:1 exactly is taken
    assert size_problem((3, 1200)).startswith("aspect ratio too extreme (3x1200 is 400:1")


@pytest.mark.parametrize("data, says", [
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a readable image"),  # never Ghostscript
    (b"", "empty image file"),
])
def test_what_is_not_a_raster_image_is_refused_unread(data, says):
    from wizard.images import inspect_bytes

    assert inspect_bytes(data)[1].startswith(says)
