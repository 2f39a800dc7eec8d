"""Synthetic caption set for the offline demo: one coloured shape on a coloured background.

    >>> from wizard.demo.shapes import make_shapes
    >>> s = make_shapes(1, seed=0)[0]
    >>> s.caption_en, s.caption_zh          # e.g. ('a red circle on a blue background', '蓝色背景上的红色圆形')

The vocabulary is small on purpose (4 shapes, 6 colours) so a ~1 M parameter model can learn it on
a CPU in minutes. Everything comes from `random.Random` (the same on every platform) and integer
PIL drawing, so a seed gives identical pixels and captions on every machine, and the first k samples
of `make_shapes(n, seed)` do not depend on n.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

SHAPES_LANGUAGES = ("en", "zh")

# name -> (RGB, Chinese name). Far apart in RGB so a tiny vision tower tells them apart at a glance.
COLORS: dict[str, tuple[tuple[int, int, int], str]] = {
    "red": ((220, 30, 30), "红色"),
    "green": ((30, 170, 50), "绿色"),
    "blue": ((30, 60, 220), "蓝色"),
    "yellow": ((240, 210, 20), "黄色"),
    "black": ((20, 20, 20), "黑色"),
    "white": ((245, 245, 245), "白色"),
}
SHAPES: dict[str, str] = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形"}
# Jitter, kept small on purpose: with more (10% shifts, tilts) a from-scratch ViT of this size needs
# several times more CPU steps before it tells a circle from a square.
SCALE = (0.5, 0.6)    # the shape's width over the image's: about half
SHIFT = 0.04          # the centre moves up to 4% of the image each way
TILT = 0.0            # radians each way (kept as a knob; upright shapes learn fastest)


@dataclass(frozen=True)
class ShapeSample:
    image: Image.Image
    shape: str
    color: str
    background: str

    @property
    def caption_en(self) -> str:
        return self.captions("en")[0]

    @property
    def caption_zh(self) -> str:
        return self.captions("zh")[0]

    def caption(self, lang: str = "en") -> str:
        """The main caption (the one to train on) in `lang` ("en" or "zh")."""
        return self.captions(lang)[0]

    def captions(self, lang: str = "en") -> list[str]:
        """All reference captions in `lang`, the main one first (extra ones help CIDEr/BLEU)."""
        if lang == "en":
            return [
                f"a {self.color} {self.shape} on a {self.background} background",
                f"a {self.background} background with a {self.color} {self.shape}",
            ]
        if lang == "zh":
            color, shape, bg = COLORS[self.color][1], SHAPES[self.shape], COLORS[self.background][1]
            return [f"{bg}背景上的{color}{shape}", f"一个{color}{shape}，背景是{bg}"]
        raise ValueError(f"unknown language {lang!r}; expected one of {SHAPES_LANGUAGES}")


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[int, int]]:
    if shape == "square":
        n, radii, start = 4, [r], math.pi / 4  # corners at r: side = r * sqrt(2)
    elif shape == "triangle":
        n, radii, start = 3, [r * 1.15], -math.pi / 2  # apex up
    else:  # star: 5 points, inner radius 0.45 r
        n, radii, start = 10, [r * 1.15, r * 0.5], -math.pi / 2
    pts = []
    for k in range(n):
        a = start + angle + 2 * math.pi * k / n
        rad = radii[k % len(radii)]
        pts.append((round(cx + rad * math.cos(a)), round(cy + rad * math.sin(a))))
    return pts


def draw_shape(shape: str, color: str, background: str, size: int = 112, *,
               scale: float = 0.5, dx: float = 0.0, dy: float = 0.0, angle: float = 0.0) -> Image.Image:
    """One image: `shape` in `color` on `background`; `scale` is the shape's width over the image's."""
    img = Image.new("RGB", (size, size), COLORS[background][0])
    draw = ImageDraw.Draw(img)
    r = scale * size / 2
    cx, cy = size / 2 + dx * size, size / 2 + dy * size
    fill = COLORS[color][0]
    if shape == "circle":
        draw.ellipse([round(cx - r), round(cy - r), round(cx + r), round(cy + r)], fill=fill)
    else:
        draw.polygon(_polygon(shape, cx, cy, r if shape != "square" else r * math.sqrt(2), angle), fill=fill)
    return img


def make_shapes(n: int, seed: int = 0, size: int = 112) -> list[ShapeSample]:
    """`n` samples, deterministic in (seed, index): same seed -> same pixels and captions everywhere."""
    out = []
    colors = list(COLORS)
    for i in range(n):
        rng = random.Random(seed * 1_000_003 + i)
        shape = rng.choice(list(SHAPES))
        color = rng.choice(colors)
        background = rng.choice([c for c in colors if c != color])
        scale = rng.uniform(*SCALE)
        dx, dy = rng.uniform(-SHIFT, SHIFT), rng.uniform(-SHIFT, SHIFT)
        angle = rng.uniform(-TILT, TILT)
        image = draw_shape(shape, color, background, size, scale=scale, dx=dx, dy=dy, angle=angle)
        out.append(ShapeSample(image=image, shape=shape, color=color, background=background))
    return out
