"""The summary screen: what the recipe trains, what will happen, and whether it fits.

    review = summarize(recipe, machine)            # numbers only (estimate, plan, verdict)
    console.print(render_summary(review, path, compact=console.height < 50))

Compact (terminals under 50 rows): one line per topic, the memory as one line with its range,
so at 80x24 the summary, the estimate and "Save this recipe?" fit on one screen. Full: the
recipe table and the memory table (wizard/estimate.py) with the same plan lines.

The verdict uses the estimate's own range (+-30%): "fits" when even the upper bound fits,
"tight" when only the middle does (then the memory suggestion is computed against the upper
bound and offered first), "does not fit" when the middle does not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from wizard.estimate import MemoryEstimate, estimate_memory
from wizard.units import fmt_bytes
from wizard.machine import Machine
from wizard.plan import Plan, make_plan

UNCERTAINTY = 0.30  # the estimate's stated +-30% (wizard/estimate.py)


@dataclass
class Review:
    recipe: object
    estimate: MemoryEstimate
    plan: Plan
    verdict: str  # fits | tight | does not fit | unknown
    suggestion: str | None
    suggested_overrides: list[str]


def real_precision(recipe, on_cpu: bool) -> str:
    """The precision the weights really train in (auto -> fp32 on a CPU, bf16 on a GPU)."""
    p = recipe.train.precision.value
    if p == "auto":
        return "fp32 (auto on a CPU)" if on_cpu else "bf16 (auto; fp16 on GPUs without bf16)"
    return p


def what_trains(recipe) -> str:
    """'a rank-16 LoRA adapter on q_proj, ... + lm_head, embed_tokens fully' (names, not counts)."""
    from wizard.catalog import model_info

    tu = recipe.tuning
    if tu.strategy.value == "full":
        what = "every weight of the language model"
        return what + ("" if tu.freeze_vision else " and the vision tower")
    targets = tu.lora.target_modules or model_info(recipe.model.id).lora_targets
    what = f"a rank-{tu.lora.rank} LoRA adapter on {', '.join(targets)}"
    if tu.lora.modules_to_save:
        what += f" + {', '.join(tu.lora.modules_to_save)} fully"
    if tu.strategy.value == "qlora":
        what += f" · base in 4-bit {tu.quant.type}"
    return what


def _shrunk(machine: Machine) -> tuple[list, int | None]:
    """The machine with its memory divided by the upper bound's factor (to search a change that fits it)."""
    gpus = [replace(g, total_bytes=int(g.total_bytes / (1 + UNCERTAINTY))) for g in machine.gpus]
    ram = int(machine.ram_bytes / (1 + UNCERTAINTY)) if machine.ram_bytes else None
    return gpus, ram


def summarize(recipe, machine: Machine, *, downloads: bool = True) -> Review:
    est = estimate_memory(recipe, list(machine.gpus), ram_bytes=machine.ram_bytes)
    suggestion, overrides = est.suggestion, list(est.suggested_overrides)
    if est.capacity_bytes is None:
        verdict = "unknown"
    elif est.per_device_bytes > est.capacity_bytes:
        verdict = "does not fit"
    elif est.per_device_bytes * (1 + UNCERTAINTY) > est.capacity_bytes:
        verdict = "tight"
        gpus, ram = _shrunk(machine)
        upper = estimate_memory(recipe, gpus, ram_bytes=ram)
        suggestion, overrides = upper.suggestion, list(upper.suggested_overrides)
    else:
        verdict = "fits"
    return Review(recipe, est, make_plan(recipe, machine, downloads=downloads), verdict, suggestion, overrides)


def memory_line(r: Review) -> str:
    est = r.estimate
    low, high = est.per_device_bytes * (1 - UNCERTAINTY), est.per_device_bytes * (1 + UNCERTAINTY)
    text = f"~{fmt_bytes(est.per_device_bytes)} ({fmt_bytes(low)}-{fmt_bytes(high)}) on {est.device}"
    if est.capacity_bytes is not None:
        text += f" of {fmt_bytes(est.capacity_bytes)}"
    if r.verdict == "fits":
        return text + ": fits, even at the upper bound"
    if r.verdict == "tight":
        return text + ": tight, the upper bound is more than there is"
    if r.verdict == "does not fit":
        return text + ": does not fit"
    return text + " (no memory to compare with here)"


def checkpointing_text(recipe) -> str:
    """"on", "off", or auto's decision on this machine: "auto: off here"."""
    value = recipe.train.gradient_checkpointing
    if value != "auto":
        return "on" if value else "off"
    from wizard.estimate import checkpointing

    return f"auto: {'on' if checkpointing(recipe)[0] else 'off'} here"


def _details(recipe) -> list[tuple[str, str]]:
    """Rows shown only in the full layout."""
    from wizard.catalog import model_info
    from wizard.chat import resolve_prompt
    from wizard.recipe import recipe_hash

    d, t, g = recipe.data, recipe.train, recipe.generation
    info = model_info(recipe.model.id)
    keep = "all" if t.save_total_limit is None else f"the last {t.save_total_limit}"
    devices = recipe.launch.devices
    return [("prompt", resolve_prompt(recipe)),
            ("images", f"max_pixels {d.max_pixels} = {d.max_pixels // info.pixels_per_token} image tokens"),
            ("more", f"warmup {t.warmup_ratio:g} · weight decay {t.weight_decay:g} · LoRA dropout "
             f"{recipe.tuning.lora.dropout:g} · checkpointing {checkpointing_text(recipe)} · "
             f"captions up to {t.max_target_length} tokens"),
            ("generation", f"beams {g.num_beams} · "
             + (f"sampling at {g.temperature:g}" if g.do_sample else "greedy") + f" · up to {g.max_new_tokens} tokens · repetition penalty {g.repetition_penalty:g}"),
            ("saving", f"checkpoint every {t.save_steps} steps, keep {keep} · seed {t.seed}"),
            ("devices", devices if isinstance(devices, str) else "GPUs " + ", ".join(map(str, devices))),
            ("hash", recipe_hash(recipe))]


def _rows(r: Review, path: Path | None, compact: bool = True) -> list[tuple[str, str]]:
    recipe = r.recipe
    d, t = recipe.data, recipe.train
    on_cpu = r.estimate.devices == ["cpu"]
    rows = [("name", recipe.name),
            ("model", f"{recipe.model.id} ({recipe.model.source})"),
            ("data", f"{d.dataset}" + (f" / {d.subset}" if d.subset else "") + f" · {d.language} · "
             + (f"at most {d.max_samples} images · " if d.max_samples else "") + f"{d.eval_fraction:.0%} held out"),
            ("trains", f"{recipe.tuning.strategy.value}: {what_trains(recipe)}"),
            ("training", f"{t.epochs:g} epochs · batch {t.batch_size}x{t.grad_accum} · lr {t.learning_rate:g} "
             f"{t.scheduler} · {real_precision(recipe, on_cpu)}"),
            *([] if compact else _details(recipe)),
            ("steps", r.plan.steps_text),
            ("time", f"{r.plan.time_text} · {r.plan.time_basis}")]
    rows += [("download", line) for line in r.plan.download_lines]
    rows.append(("memory", memory_line(r)))
    if r.suggestion:
        rows.append(("suggest", r.suggestion))
    if path is not None:
        rows.append(("file", str(path)))
    return rows


def render_summary(r: Review, path: Path | None, *, compact: bool):
    """A rich renderable. Compact: one table of short rows (values wrap, labels stay)."""
    from rich.console import Group
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    styles = {"memory": {"fits": "green", "tight": "yellow", "does not fit": "bold red"}.get(r.verdict, ""),
              "suggest": "green"}
    for label, value in _rows(r, path, compact):
        table.add_row(label, value, style=styles.get(label))
    if compact:
        return table
    return Group(table, "", render_estimate(r.estimate))


def render_estimate(est: MemoryEstimate):
    """The estimate as a rich Table, followed by the warning and suggestion when there are any."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from wizard.units import fmt_bytes

    table = Table(title=f"Memory estimate: {est.where}", title_justify="left", show_edge=False,
                  pad_edge=False)
    table.add_column("part")
    table.add_column("memory", justify="right")
    table.add_column("how it is counted", overflow="fold")
    for label, n, note in est.rows:
        table.add_row(label, fmt_bytes(n), note)
    total = fmt_bytes(est.per_device_bytes)
    if est.capacity_bytes is not None:
        total += f" of {fmt_bytes(est.capacity_bytes)}"
    label = "total per device" if len(est.devices) > 1 else "total"
    table.add_row(Text(label, style="bold"), Text(total, style="bold"),
                  "an estimate, +-30% (formula: wizard/estimate.py)" +
                  (f"; {fmt_bytes(est.total_bytes)} on {len(est.devices)} devices" if len(est.devices) > 1 else ""))
    parts: list = [table]
    for note in est.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    if est.warning:
        parts.append(Text(f"warning: {est.warning}", style="bold yellow"))
    if est.suggestion:
        parts.append(Text(f"suggestion: {est.suggestion}", style="green"))
        if est.suggested_overrides:
            parts.append(Text("  (as overrides: " + " ".join(est.suggested_overrides) + ")", style="dim"))
    elif est.fits:
        parts.append(Text(f"fits: about {fmt_bytes(est.capacity_bytes - est.per_device_bytes)} to spare", style="green"))
    return Group(*parts)
