"""A loss chart drawn with braille dots, and block sparklines: plain rich renderables.

Each character cell holds 2x4 braille dots, so an 80-column terminal gives a
~140x36-dot plot. The raw loss is drawn as dots, the smoothed loss as a line,
eval losses as ◆ and a NaN/inf loss as a red ✖ on the top row.
"""

from __future__ import annotations

import math

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

BRAILLE = 0x2800
# bit of dot (column dx, row dy) inside one braille cell
DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
RAW, SMOOTH, EVAL, BAD = 1, 2, 3, 4          # drawing layers: the highest in a cell picks its colour
STYLES = {RAW: "bright_black", SMOOTH: "bold cyan", EVAL: "bold magenta", BAD: "bold red"}
SPARKS = "▁▂▃▄▅▆▇█"


LOG_SPAN = 10.0   # the loss axis goes logarithmic when the loss spans more than this factor


def is_log_scale(losses, evals=()) -> bool:
    """A loss from 10 down to 0.1: on a linear axis everything after the first drop is one flat line."""
    values = [y for y in losses if math.isfinite(y)] + [y for _, y in evals if math.isfinite(y)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > LOG_SPAN


def tick_decimals(span: float) -> int:
    """Decimals that keep neighbouring axis labels apart: 2.31 / 0.4213 / 12.5."""
    if span <= 0 or not math.isfinite(span):
        return 2
    return max(0, min(6, math.ceil(-math.log10(span)) + 2))


class BrailleCanvas:
    def __init__(self, cols: int, rows: int):
        self.cols, self.rows = cols, rows
        self.bits = [[0] * cols for _ in range(rows)]
        self.layer = [[0] * cols for _ in range(rows)]
        self.marks: dict[tuple[int, int], tuple[str, int]] = {}   # (row, col) -> (char, layer)

    def dot(self, x: int, y: int, layer: int) -> None:
        """Dot at (x, y) in dot coordinates, (0, 0) top left."""
        if 0 <= x < self.cols * 2 and 0 <= y < self.rows * 4:
            r, c = y // 4, x // 2
            self.bits[r][c] |= DOT_BITS[x % 2][y % 4]
            self.layer[r][c] = max(self.layer[r][c], layer)

    def line(self, x0: int, y0: int, x1: int, y1: int, layer: int) -> None:
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(n + 1):
            self.dot(round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n), layer)

    def mark(self, x: int, y: int, char: str, layer: int) -> None:
        r, c = min(max(y // 4, 0), self.rows - 1), min(max(x // 2, 0), self.cols - 1)
        if self.marks.get((r, c), ("", 0))[1] <= layer:
            self.marks[(r, c)] = (char, layer)

    def row_text(self, r: int) -> Text:
        """Row `r` as Text, one span per run of same-coloured cells."""
        chars = [chr(BRAILLE + b) if b else " " for b in self.bits[r]]
        layers = list(self.layer[r])
        for (mr, mc), (char, layer) in self.marks.items():
            if mr == r:
                chars[mc], layers[mc] = char, layer
        text = Text(no_wrap=True, overflow="crop")
        start = 0
        for c in range(1, self.cols + 1):
            if c == self.cols or layers[c] != layers[start]:
                text.append("".join(chars[start:c]), STYLES.get(layers[start]))
                start = c
        return text


class LossChart:
    """Raw + smoothed loss over steps with labelled axes, `rows` plot rows + 2 axis rows."""

    _memo: tuple = (None, None)   # (key, lines) of the last chart drawn: a redraw for the clock reuses it

    def __init__(self, steps, losses, smoothed, *, evals=(), rows: int = 8, x_max: int | None = None):
        # the caller's lists, not copies: rendering happens at once, and runs can log many steps
        self.steps, self.losses, self.smoothed = steps, losses, smoothed
        self.evals, self.rows, self.x_max = list(evals), max(2, rows), x_max

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(20, options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        key = (options.max_width, self.rows, self.x_max, len(self.steps), len(self.evals),
               repr(self.steps[-1:]), repr(self.losses[-1:]), repr(self.smoothed[-1:]), repr(self.evals[-1:]))
        memo_key, lines = LossChart._memo
        if memo_key != key:
            lines = self.lines(options.max_width)
            LossChart._memo = (key, lines)
        yield from lines

    def lines(self, width: int) -> list[Text]:
        if not self.steps:
            out = [Text("") for _ in range(self.rows + 2)]
            out[self.rows // 2] = Text("waiting for the first logged step…", style="dim", justify="center")
            return out
        # the smoothed curve is an average of raw values: it stays inside their range
        values = [y for y in self.losses if math.isfinite(y)] + [y for _, y in self.evals if math.isfinite(y)]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5 * max(abs(lo), 1e-3), hi + 0.5 * max(abs(hi), 1e-3)
        log = is_log_scale(self.losses, self.evals)
        f = math.log10 if log else (lambda v: v)   # position of a value on the y axis
        flo, fhi = f(lo), f(hi)
        dec = tick_decimals(hi - lo)
        label_rows = self._label_rows()
        if log:   # labels at evenly spaced positions of the log axis, 3 significant digits
            labels = {r: f"{10 ** (fhi - (fhi - flo) * r / (self.rows - 1)):.3g}" for r in label_rows}
        else:
            labels = {r: f"{hi - (hi - lo) * r / (self.rows - 1):.{dec}f}" for r in label_rows}
        lw = max([4] + [len(s) for s in labels.values()])   # >= 4: "step" fits under the labels
        cols = max(10, width - lw - 2)
        x_lo = min([self.steps[0]] + [s for s, _ in self.evals])
        x_hi = max([self.steps[-1], self.x_max or 0] + [s for s, _ in self.evals])
        x_hi = x_hi if x_hi > x_lo else x_lo + 1

        canvas = BrailleCanvas(cols, self.rows)
        kx, ky = (cols * 2 - 1) / (x_hi - x_lo), (self.rows * 4 - 1) / (fhi - flo)
        dx = lambda s: int((s - x_lo) * kx + 0.5)   # noqa: E731
        dy = lambda y: int((fhi - f(y)) * ky + 0.5)     # noqa: E731
        xs = [int((s - x_lo) * kx + 0.5) for s in self.steps]
        # thousands of steps land on a few hundred dot columns: reduce before drawing.
        # `lo <= y <= hi` is False for NaN and inf.
        for x, y in {(x, dy(y)) for x, y in zip(xs, self.losses) if lo <= y <= hi}:
            canvas.dot(x, y, RAW)
        prev_x, prev_y, y_min, y_max = None, 0, 0, 0   # smoothed: a line, one vertical span per dot column
        for x, y in zip(xs, self.smoothed):
            if not lo <= y <= hi:
                continue
            y = dy(y)
            if x == prev_x:
                y_min, y_max = min(y_min, y), max(y_max, y)
            else:
                if prev_x is not None:
                    for yy in range(y_min, y_max + 1):
                        canvas.dot(prev_x, yy, SMOOTH)
                    canvas.line(prev_x, prev_y, x, y, SMOOTH)
                y_min = y_max = y
            prev_x, prev_y = x, y
        if prev_x is not None:
            for yy in range(y_min, y_max + 1):
                canvas.dot(prev_x, yy, SMOOTH)
        for s, y in self.evals:
            if math.isfinite(y):
                canvas.mark(dx(s), dy(y), "◆", EVAL)
        for s, y in zip(self.steps, self.losses):
            if not math.isfinite(y):
                canvas.mark(dx(s), 0, "✖", BAD)

        out = []
        for r in range(self.rows):
            line = Text(no_wrap=True, overflow="crop")
            line.append(labels.get(r, "").rjust(lw) + (" ┤" if r in labels else " │"), "dim")
            line.append_text(canvas.row_text(r))
            out.append(line)
        out.append(Text(" " * lw + " └" + "─" * cols, style="dim", no_wrap=True, overflow="crop"))
        out.append(self._x_labels(x_lo, x_hi, lw + 2, cols))
        return out

    def _label_rows(self) -> list[int]:
        """Rows with a y label: top, bottom and about every 4th row between."""
        n = max(1, round((self.rows - 1) / 4))
        return sorted({round(i * (self.rows - 1) / n) for i in range(n + 1)})

    def _x_labels(self, x_lo: int, x_hi: int, indent: int, cols: int) -> Text:
        chars = [" "] * (indent + cols)
        n = max(1, cols // 16)
        placed_end, last_label = -1, None
        for i in range(n + 1):
            step = round(x_lo + (x_hi - x_lo) * i / n)
            label = str(step)
            if label == last_label:   # few steps, many ticks: each step once
                continue
            last_label = label
            pos = indent + round((step - x_lo) / (x_hi - x_lo) * (cols - 1))   # where that step is drawn
            start = min(max(pos - len(label) // 2, indent), indent + cols - len(label))
            if i == n:
                start = indent + cols - len(label)
            if start <= placed_end + 1:
                continue
            chars[start:start + len(label)] = label
            placed_end = start + len(label) - 1
        text = "".join(chars)
        title = "step"
        if text[:indent].strip() == "":   # the axis title goes in the label gutter
            text = title.rjust(indent - 1) + " " + text[indent:]
        return Text(text, style="dim", no_wrap=True, overflow="crop")


def sparkline(values, width: int) -> str:
    """`values` squeezed into `width` block characters (bucket means); NaNs ignored."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals or width <= 0:
        return ""
    if len(vals) > width:
        buckets = [vals[i * len(vals) // width:(i + 1) * len(vals) // width] for i in range(width)]
        vals = [sum(b) / len(b) for b in buckets if b]
    lo, hi = min(vals), max(vals)
    if hi - lo <= 1e-12 * max(abs(hi), 1e-30):
        return SPARKS[3] * len(vals)
    return "".join(SPARKS[min(7, int((v - lo) / (hi - lo) * 8))] for v in vals)
