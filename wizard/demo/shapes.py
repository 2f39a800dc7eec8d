"""Synthetic caption set for the offline demo: one coloured shape on a coloured background.

    >>> from wizard.demo.shapes import make_shapes
    >>> s = make_shapes(1, seed=0)[0]
    >>> s.caption_en, s.caption_zh
    ('a yellow star on a red background', '一个黄色星形，背景是红色')
    >>> s.captions("zh")                    # every reference phrasing, the main one first
    ['一个黄色星形，背景是红色', '红色背景上的黄色星形']

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
        """All reference captions in `lang`, the main one first (the second helps CIDEr/BLEU)."""
        if lang not in TEMPLATES:
            raise ValueError(f"unknown language {lang!r}; expected one of {SHAPES_LANGUAGES}")
        names = {"color": _name(self.color, lang), "shape": _name(self.shape, lang),
                 "background": _name(self.background, lang)}
        return [t.format(**names) for t in TEMPLATES[lang]]


# The main caption first. The main Chinese one keeps the English word order (colour, shape, then
# background), so adapting the English base to Chinese is mostly a change of words.
TEMPLATES = {
    "en": ["a {color} {shape} on a {background} background", "a {background} background with a {color} {shape}"],
    "zh": ["一个{color}{shape}，背景是{background}", "{background}背景上的{color}{shape}"],
}


def _name(word: str, lang: str) -> str:
    if lang == "en":
        return word
    return COLORS[word][1] if word in COLORS else SHAPES[word]


def parse_caption(text: str, lang: str = "en") -> tuple[str, str, str] | None:
    """(color, shape, background) in English words, read from any phrasing in `captions(lang)`;
    None if `text` is not one of them. For scoring generated captions part by part."""
    import re

    def alt(words):
        return "(" + "|".join(sorted((re.escape(_name(w, lang)) for w in words), key=len, reverse=True)) + ")"

    back = {_name(w, lang): w for w in [*COLORS, *SHAPES]}
    for template in TEMPLATES[lang]:
        order = re.findall(r"{(\w+)}", template)
        pattern = re.escape(template)
        for key, words in (("color", COLORS), ("shape", SHAPES), ("background", COLORS)):
            pattern = pattern.replace(re.escape("{" + key + "}"), alt(words))
        m = re.fullmatch(pattern, text.strip())
        if m:
            got = dict(zip(order, (back[g] for g in m.groups())))
            return got["color"], got["shape"], got["background"]
    return None


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
