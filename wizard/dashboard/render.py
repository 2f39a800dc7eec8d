"""Pure rendering of a DashboardState: `render` (the live screen), `summary`, `plain_line`.

Nothing here reads files or the clock: `now` is passed in, so a test renders a
fixed state to text (tests/test_dashboard.py keeps the expected screens under
tests/snapshots/). Every piece has a known height, and `render` hands the rows
left over to the loss chart, so the screen never exceeds `height` rows.
"""

from __future__ import annotations

import math

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from wizard.dashboard.chart import BAD, EVAL, RAW, SMOOTH, STYLES, LossChart, is_log_scale, sparkline
from wizard.dashboard.state import SMOOTHING, DashboardState, num
from wizard.rundir.layout import LOG_FILE

WIDE = 120            # from this width memory and recent events sit side by side
MAX_CHART_ROWS = 24   # a taller chart shows nothing more
WARN_PCT, HOT_PCT = 75.0, 90.0
STATUS_BADGES = {
    "starting": ("○ starting", "dim"),
    "running": ("● running", "bold green"),
    "completed": ("✔ completed", "bold green"),
    "stopped": ("■ stopped", "bold yellow"),
    "failed": ("✖ failed", "bold red"),
}
NOTE_ICONS = {"checkpoint": ("✔", "green"), "warning": ("⚠", "yellow"), "error": ("✖", "bold red"),
              "eval": ("◆", "magenta"), "status": ("●", "cyan"), "start": ("▶", "cyan")}


# ---- small formatters ---------------------------------------------------------------
def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def fmt_bytes(n: float | None) -> str:
    """wizard.units.fmt_bytes, with "—" for a figure the events did not carry."""
    from wizard.units import fmt_bytes as fmt

    return "—" if n is None else fmt(n)


def fmt_count(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


def fmt_loss(x: float | None) -> str:
    if x is None:
        return "—"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4f}"


def fmt_clock(seconds: float) -> str:
    """Time since the run started, as +m:ss or +h:mm:ss (no wall clock: snapshots stay stable)."""
    s = int(max(0.0, seconds))
    return f"+{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"+{s // 60}:{s % 60:02d}"


def _fit(parts: list[str], width: int, sep: str = " · ") -> str:
    """Join `parts`, dropping them from the end until the line fits `width`."""
    while parts and len(sep.join(parts)) > width:
        parts = parts[:-1]
    return sep.join(parts)


def _line(text: str | Text, style: str = "") -> Text:
    t = text if isinstance(text, Text) else Text(text, style=style)
    t.no_wrap, t.overflow = True, "ellipsis"
    return t


def mem_percent(used: float | None, total: float | None) -> float | None:
    return 100.0 * used / total if used is not None and total else None


def pct_style(pct: float | None) -> str:
    if pct is None:
        return ""
    return "bold red" if pct > HOT_PCT else "yellow" if pct > WARN_PCT else "green"


def _bar(pct: float | None, width: int) -> Text:
    if pct is None or width < 3:
        return Text("")
    fill = min(width, round(pct / 100 * width))
    return Text.assemble(("▕", "dim"), ("█" * fill, pct_style(pct)), ("░" * (width - fill), "dim"),
                         ("▏", "dim"))


# ---- pieces, each with a known number of rows -------------------------------------------
def _header(st: DashboardState, width: int) -> list[Text]:
    badge, style = STATUS_BADGES.get(st.status, (st.status, "bold"))
    if st.status == "running" and st.session_t is None:   # loading: training has not started yet
        badge, style = STATUS_BADGES["starting"]
    if st.stop_requested and st.status == "running":
        badge, style = "◌ stopping (saving a checkpoint)", "bold yellow"
    right = (f"recipe {st.recipe_hash}  " if st.recipe_hash else "") + badge
    name = st.name
    if len(name) > width - len(right) - 3:   # the name is never cut (users copy it): drop the hash first
        right = badge
    if len(name) > width - len(right) - 3:   # still too long: the badge goes to the next line
        first = Text.assemble((" " + name, "bold"))
        second = Text.assemble((" " + badge, style))
        return [first, _line(second), _line(" " + _fit(_facts(st), width - 1), "dim")]
    top = Text.assemble((" " + name, "bold"), " " * max(1, width - len(name) - len(right) - 2),
                        (right[: -len(badge)], "dim"), (badge, style))
    return [_line(top), _line(" " + _fit(_facts(st), width - 1), "dim")]


def _facts(st: DashboardState) -> list[str]:
    """Model, strategy, devices, trained params, data counts: the header's second line."""
    parts = [p for p in (st.model, st.strategy, ", ".join(st.devices)) if p]
    if st.trainable_params is not None and st.total_params:
        pct = 100 * st.trainable_params / st.total_params
        parts.append(f"{fmt_count(st.trainable_params)}/{fmt_count(st.total_params)} params trained ({pct:.1f}%)")
    # the trainer counts captions (its targets); the backend's data event counts images
    if st.images is not None and st.num_train is not None:
        parts.append(f"{st.images[0]}/{st.images[1]} train/eval images ({st.num_train}/{st.num_eval or 0} "
                     "captions)")
    elif st.images is not None:
        parts.append(f"{st.images[0]} train / {st.images[1]} eval images")
    elif st.num_train is not None:
        parts.append(f"{st.num_train} train / {st.num_eval or 0} eval captions")
    if st.data:  # the front end's data check: format, skipped rows
        parts.append(st.data)
    return parts


def _progress(st: DashboardState, width: int, now: float) -> list[Text]:
    total = st.total_steps
    frac = min(1.0, st.step / total) if total else 0.0
    counts = f" {st.step}/{total or '?'} steps {frac * 100:3.0f}% "
    bar_w = max(5, width - len(counts) - 1)
    done = int(frac * bar_w)
    bar_style = "red" if st.status == "failed" else "yellow" if st.status == "stopped" else "green"
    bar = Text.assemble(" ", ("━" * done, bar_style), ("╸" if done < bar_w and frac > 0 else "", bar_style),
                        ("─" * (bar_w - done - (1 if done < bar_w and frac > 0 else 0)), "dim"),
                        (counts, "bold"))
    parts = [f"epoch {st.epoch:.2f}"] if st.epoch is not None else []
    elapsed = fmt_duration(st.elapsed(now))
    parts.append(f"{'took' if st.finished else 'elapsed'} {elapsed}")
    stalled = st.stalled_for(now)
    line = Text(" ")
    if stalled is not None:
        usual = st.usual_interval()
        line.append(" · ".join(parts) + " · ")
        line.append(f"STALLED: no step for {fmt_duration(stalled)} (usually {fmt_duration(usual)})",
                    "bold yellow")
        return [_line(bar), _line(line)]
    if st.session_t is None and st.status_message and not st.finished:
        parts.append(st.status_message)            # e.g. "loading the model", before the first step
    elif not st.finished:
        parts.append(f"ETA {fmt_duration(st.eta(now))}")
    sps = st.session_samples_per_s()
    if sps is not None:
        parts.append(f"{sps:.1f} samples/s")
    if st.resumed:
        parts.append(f"resumed at step {st.session_start_step}")
    if st.tokens_per_s is not None:
        parts.append(f"{st.tokens_per_s:.0f} tokens/s")
    line.append(_fit(parts, width - 1))
    return [_line(bar), _line(line)]


def _nan_banner(st: DashboardState, width: int) -> list[Text]:
    what = "inf" if st.nan_value is not None and math.isinf(st.nan_value) else "NaN (not a number)"
    lines = [f" ✖ LOSS IS {what} AT STEP {st.nan_step}: training has diverged",
             "   try a lower train.learning_rate (or check the data), then start again"]
    return [_line(Text(s.ljust(width), style="bold white on red")) for s in lines]


def _chart_panel(st: DashboardState, rows: int, width: int) -> Panel:
    last = st.losses[-1] if st.losses else None
    title = f"loss {fmt_loss(last)}"
    if st.smoothed:
        title += f" · smoothed {fmt_loss(st.smoothed[-1])}"
    best = st.best_loss()
    if best and width >= 70:
        title += f" · best {fmt_loss(best[1])} (step {best[0]})"
    if st.evals and width >= 100:
        title += f" · eval {fmt_loss(st.evals[-1][1])} (step {st.evals[-1][0]})"
    legend = Text.assemble(("⠂ raw", STYLES[RAW]), "  ", ("━ smoothed", STYLES[SMOOTH]), f" (EMA {SMOOTHING})")
    if st.evals:
        legend.append_text(Text.assemble("  ", ("◆ eval", STYLES[EVAL])))
    if st.nan_step is not None:
        legend.append_text(Text.assemble("  ", ("✖ NaN", STYLES[BAD])))
    if is_log_scale(st.losses, st.evals):
        legend.append_text(Text("  log scale", style="dim"))
    chart = LossChart(st.steps, st.losses, st.smoothed, evals=st.evals, rows=rows)
    return Panel(chart, title=Text(title, style="bold"), title_align="left", subtitle=legend,
                 subtitle_align="right", border_style="blue", padding=(0, 1), width=width)


def _rates_line(st: DashboardState, width: int) -> list[Text]:
    """Learning rate and grad norm over the whole run, as two sparklines with their last values."""
    if not st.lrs:
        return []
    half = width // 2
    out = Text(no_wrap=True, overflow="ellipsis")
    for name, values, fmt in ((" lr ", st.lrs, "{:.2e}"), ("  grad norm ", st.grad_norms, "{:.3g}")):
        last = next((x for x in reversed(values) if math.isfinite(x)), None)
        value = " " + (fmt.format(last) if last is not None else "—")
        spark = sparkline(values, max(0, half - len(name) - len(value) - 1))
        out.append(name, "bold")
        out.append(spark, "cyan")
        out.append(value.ljust(half - len(name) - len(spark)))
    return [out]


def _gib(n) -> str:
    return "—" if n is None else f"{n / 2**30:.1f}"


def _memory(st: DashboardState, width: int) -> list[Text]:
    """One row per device; the figures shorten (used/total goes last) to fit `width`."""
    mem = st.memory
    if not mem:
        return [_line(Text.assemble((" memory ", "bold"), ("waiting for the first logged step", "dim")))]
    bar_w = 10 if width >= 70 else 0
    if mem.get("kind") == "cpu":
        rss, peak, total = mem.get("rss"), mem.get("peak_rss"), mem.get("total")
        of = f" · of {fmt_bytes(total)} RAM" if total else ""
        forms = [f"RSS {fmt_bytes(rss)} · peak {fmt_bytes(peak)}{of}",
                 f"RSS {_gib(rss)} · peak {_gib(peak)}" + (f" of {_gib(total)} GiB" if total else " GiB")]
        return _mem_rows([(" memory ", "cpu", forms, mem_percent(rss, total))], bar_w, width)
    rows = []
    for i, d in enumerate(mem.get("devices") or []):
        name = f"cuda:{d.get('index', i)}"
        alloc, res, peak, used, total = (d.get(k) for k in ("allocated", "reserved", "peak", "used", "total"))
        pct = mem_percent(used, total) if used is not None else mem_percent(res, total)
        a, r, p = _gib(alloc), _gib(res), _gib(peak)
        of = f" · used {fmt_bytes(used) if used is not None else '—'} of {fmt_bytes(total)}" if total else ""
        of_short = f" · used {_gib(used)}/{_gib(total)} GiB" if total else " GiB"
        forms = [f"allocated {fmt_bytes(alloc)} · reserved {fmt_bytes(res)} · peak {fmt_bytes(peak)}{of}",
                 f"alloc {a} · reserved {r} · peak {p}{of_short}",
                 f"alloc {a} · res {r} · peak {p}{of_short}",
                 f"alloc {a} · peak {p}{of_short}",
                 f"peak {p}{of_short}"]
        if width >= 100 and d.get("name"):
            name += f" {d['name'][:22]}"
        rows.append((" memory " if i == 0 else " " * 8, name, forms, pct))
    return _mem_rows(rows, bar_w, width) or [_line(" memory —")]


def _mem_rows(rows, bar_w: int, width: int) -> list[Text]:
    """Rows of (label, device, [figures, shorter figures...], percent), all in the same form."""
    out, tails = [], []
    dev_w = max((len(dev) for _, dev, _, _ in rows), default=0)
    for label, dev, forms, pct in rows:
        pct_txt = "" if pct is None else f" {pct:3.0f}%" + (" ⚠" if pct > HOT_PCT else "  ")
        tail = Text.assemble((pct_txt, pct_style(pct)), " ", _bar(pct, bar_w)) if pct is not None else Text("")
        tails.append(tail)
    tail_w = max(len(t.plain) for t in tails) if tails else 0   # columns line up across devices
    rooms = [width - len(label) - dev_w - 2 - tail_w for label, _, _, _ in rows]
    n_forms = max(len(forms) for _, _, forms, _ in rows) if rows else 0
    pick = next((k for k in range(n_forms) if all(len(forms[min(k, len(forms) - 1)]) <= room
                                                  for (_, _, forms, _), room in zip(rows, rooms))),
                n_forms - 1)
    for (label, dev, forms, pct), tail, room in zip(rows, tails, rooms):
        figures = forms[min(pick, len(forms) - 1)]
        if len(figures) > room:
            figures = figures[: max(0, room - 1)] + "…"
        out.append(_line(Text.assemble((label, "bold"), (dev.ljust(dev_w), "cyan"), "  ",
                                       figures.ljust(room), tail)))
    return out


def _notes(st: DashboardState, width: int, rows: int) -> list[Text]:
    if rows <= 0:
        return []
    notes = list(st.notes)[-rows:]
    out = []
    for n in notes:
        icon, style = NOTE_ICONS.get(n.kind, ("·", ""))
        when = fmt_clock(n.t - (st.first_t or n.t))
        text = cut_words(n.text, width - len(f" {when:>8} ") - 2)
        out.append(_line(Text.assemble((f" {when:>8} ", "dim"), (icon, style), " ",
                                       (text, "red" if n.kind == "error" else ""))))
    return out or [_line(" no events yet", "dim")]


def cut_words(text: str, room: int) -> str:
    """`text` in `room` columns, cut between words (never inside a number: "step 16…" for 164)."""
    if len(text) <= room:
        return text
    cut = text.rfind(" ", 0, max(0, room - 1))
    return (text[:cut] if cut > 0 else text[: max(0, room - 1)]).rstrip(" ,:;·") + "…"


def fmt_metric(v) -> str:
    """0.000, 0.412, 6.38: metrics are 0-10 scores; 3.18e-18 is a zero, printed as one."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return str(v)
    return f"{v:.3f}" if abs(v) < 1000 else f"{v:.4g}"


def _failure(st: DashboardState, width: int, rows: int) -> tuple[list, int]:
    """The error and the tail of train.log, in a red box of at most `rows` rows."""
    body = [_line(Text(st.error or st.status_message or "the run failed", style="bold red"))]
    tail = (st.log_tail or "").splitlines()
    room = max(0, rows - 2 - len(body) - 1)
    if tail and room > 0:
        body.append(_line(Text("train.log (last lines):", style="dim")))
        body += [_line(Text(x, style="dim")) for x in tail[-room:]]
    panel = Panel(Group(*body), title=Text("run failed", style="bold red"), title_align="left",
                  border_style="red", padding=(0, 1), width=width)
    return [panel], 2 + len(body)


def render(state: DashboardState, *, width: int, height: int, now: float):
    """The dashboard for `state` at time `now`: at most `height` rows of `width` columns."""
    st = state
    top = _header(st, width) + _progress(st, width, now)
    if st.nan_step is not None:
        top += _nan_banner(st, width)
    failure, fail_rows = [], 0
    if st.status == "failed":
        budget = max(4, min(14, height - len(top) - 8 - 3))   # leave a small chart + 3 rows
        failure, fail_rows = _failure(st, width, budget)
    wide = width >= WIDE   # then memory | recent events side by side under the chart
    right_w = min(60, max(40, width // 3)) if wide else width
    left_w = width - right_w if wide else width
    rates = _rates_line(st, left_w)
    mem = _memory(st, left_w)
    left_rows = len(rates) + len(mem)
    note_rows = max(left_rows, min(len(st.notes), 5)) if wide else (min(len(st.notes), 3) or 1)
    bottom = lambda: max(left_rows, note_rows) if wide else left_rows + note_rows  # noqa: E731
    spare = height - len(top) - fail_rows - bottom() - 4   # chart panel: 2 borders + 2 axis rows
    while spare < 4 and note_rows > 0:   # small terminal: fewer recent events before a smaller chart
        note_rows -= 1
        spare = height - len(top) - fail_rows - bottom() - 4
    chart_rows = max(3, min(MAX_CHART_ROWS, spare))
    parts: list = list(top)
    parts.append(_chart_panel(st, chart_rows, width))
    parts += failure
    notes = _notes(st, right_w, note_rows)
    if wide:
        grid = Table.grid()
        grid.add_column(width=left_w, no_wrap=True)
        grid.add_column(width=right_w, no_wrap=True)
        grid.add_row(Group(*rates, *mem), Group(*notes))
        parts.append(grid)
    else:
        parts += rates + mem + notes
    return Group(*parts)


# ---- after the end ----------------------------------------------------------------------
def summary_rows(st: DashboardState, *, loss_png: str | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs for the end-of-run summary; the same facts in rich and plain output."""
    rows = []
    end = st.end or {}
    final = num(end.get("final_loss")) if "final_loss" in end else (st.losses[-1] if st.losses else None)
    if final is not None or st.losses:
        rows.append(("final loss", f"{fmt_loss(final)} (step {end.get('step', st.step)})"))
    best = st.best_loss()
    if end.get("best_loss") is not None or best:
        rows.append(("best loss", fmt_loss(end.get("best_loss", best and best[1]))
                     + (f" (step {best[0]})" if best else "")))
    if st.evals:
        rows.append(("eval loss", f"{fmt_loss(st.evals[-1][1])} (step {st.evals[-1][0]})"))
    for which, metrics in st.eval_metrics.items():
        rows.append((f"metrics ({which})", ", ".join(f"{k} {fmt_metric(v)}" for k, v in metrics.items())))
    seconds = end.get("seconds")
    if seconds is None and st.first_t is not None and st.last_t is not None:
        seconds = st.last_t - st.first_t
    if st.command_t is not None and st.last_t is not None:   # the wall time the user waited
        waited = fmt_duration(st.last_t - st.command_t)
        rows.append(("time", f"{waited} (training {fmt_duration(seconds)}"
                     + (", over more than one session)" if st.resumed else ")")))
    else:
        rows.append(("time", fmt_duration(seconds) + (" (over more than one session)" if st.resumed else "")))
    if st.peak_memory:
        rows.append(("peak memory", ", ".join(f"{fmt_bytes(v)} ({k})" for k, v in st.peak_memory.items())))
    run_dir = st.run_dir.rstrip("/") or "RUN_DIR"
    if end.get("adapter"):
        rows.append(("adapter", f"{run_dir}/{end['adapter']}"))
    if loss_png:
        rows.append(("loss curve", loss_png))
    if st.status == "completed":
        rows.append(("next", f"caption-wizard caption {run_dir} IMAGE..."))  # one command a line: copyable
        held_out = st.images[1] if st.images else st.num_eval
        if held_out != 0:  # nothing held out: eval would only say so
            rows.append(("", f"caption-wizard eval {run_dir}"))
        rows.append(("", f"caption-wizard export {run_dir} --merge"))
    elif st.status == "stopped":
        if st.last_checkpoint:
            rows.append(("checkpoint", f"{run_dir}/{st.last_checkpoint}"))
        rows.append(("resume with", f"caption-wizard resume {run_dir}"))
    elif st.status == "failed":
        rows.append(("error", st.error or st.status_message or "the run failed"))
        rows.append(("full log", f"{run_dir}/train.log"))
    return rows


def summary(st: DashboardState, *, loss_png: str | None = None) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for label, value in summary_rows(st, loss_png=loss_png):
        table.add_row(label, Text(value, style="red" if label == "error" else "", overflow="fold"))  # never cut
    if st.status == "failed" and st.log_tail:
        table.add_row(LOG_FILE, Text("\n".join(st.log_tail.splitlines()[-10:]), style="dim"))
    badge, style = STATUS_BADGES.get(st.status, (st.status, "bold"))
    return Panel(table, title=Text(f"{st.name} {badge}", style=style), title_align="left",
                 border_style=style.replace("bold ", "") or "blue", padding=(0, 1), expand=False)


def plain_summary(st: DashboardState, *, loss_png: str | None = None) -> list[str]:
    rows = summary_rows(st, loss_png=loss_png)
    w = max(len(k) for k, _ in rows)
    lines = [f"{st.status}: {st.name}"] + [f"  {k.ljust(w)}  {v}" for k, v in rows]
    if st.status == "failed" and st.log_tail:
        lines += ["  train.log (last lines):"] + [f"  | {x}" for x in st.log_tail.splitlines()[-15:]]
    return lines


# ---- plain lines (--plain, piped output) -------------------------------------------------
def _plain_memory(mem: dict | None) -> str | None:
    if not mem:
        return None
    if mem.get("kind") == "cpu":
        return f"mem {fmt_bytes(mem.get('rss'))}"
    devs = mem.get("devices") or []
    return "mem " + ", ".join(f"cuda:{d.get('index', i)} {fmt_bytes(d.get('allocated'))}"
                              + (f"/{fmt_bytes(d['total'])}" if d.get("total") else "")
                              for i, d in enumerate(devs)) if devs else None


def plain_line(event: dict, state: DashboardState) -> str | None:
    """One line for `event` (call after state.apply(event)); None for events not worth a line."""
    kind, t = event.get("type"), event.get("t")
    now = float(t) if isinstance(t, (int, float)) else (state.last_t or 0.0)
    if kind == "log":
        total = state.total_steps or "?"
        parts = [f"step {event.get('step')}/{total}"]
        if event.get("epoch") is not None:
            parts.append(f"epoch {float(event['epoch']):.2f}")
        if "loss" in event:
            loss = state.losses[-1] if state.steps and state.steps[-1] == event.get("step") else None
            parts.append(f"loss {fmt_loss(loss)}" + ("  <-- NOT A NUMBER: training has diverged"
                                                       if loss is not None and not math.isfinite(loss) else ""))
        if isinstance(event.get("learning_rate"), (int, float)):
            parts.append(f"lr {event['learning_rate']:.2e}")
        if isinstance(event.get("grad_norm"), (int, float)):
            parts.append(f"grad {event['grad_norm']:.3g}")
        if isinstance(event.get("samples_per_s"), (int, float)):
            parts.append(f"{event['samples_per_s']:.1f} samples/s")
        mem = _plain_memory(event.get("memory"))
        if mem:
            parts.append(mem)
        parts.append(f"ETA {fmt_duration(state.eta(now))}")
        return "  ".join(parts)
    if kind == "start":
        what = f"resumed at step {state.session_start_step}/{state.total_steps}" if state.resumed \
            else f"started: {state.total_steps} steps"
        extra = ", ".join(p for p in (state.model, state.strategy, "+".join(state.devices)) if p)
        return f"{state.name} {what}" + (f" ({extra})" if extra else "")
    if kind == "checkpoint":
        return f"checkpoint saved: {event.get('path')} (step {event.get('step')})"
    if kind == "eval":
        return "eval " + (state.notes[-1].text if state.notes else "")
    if kind == "warning":
        return f"warning: {event.get('message', '')}"
    if kind == "error":   # the tail of train.log comes with the summary at the end
        return f"error: {event.get('message', '')}"
    if kind == "status" and (event.get("status") != "running" or event.get("message")):
        msg = event.get("message") if event.get("message") != state.error else None   # said already
        return f"status: {event.get('status')}" + (f" ({msg})" if msg else "")
    if kind == "end":
        return (f"finished at step {event.get('step')}: final loss {fmt_loss(num(event.get('final_loss')))}, "
                f"best {fmt_loss(num(event.get('best_loss')))}, {fmt_duration(num(event.get('seconds')))}")
    return None
