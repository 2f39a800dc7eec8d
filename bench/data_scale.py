"""Data preparation at scale: time to the first training step, images/s verified, peak RSS.

    .venv/bin/python bench/data_scale.py                 # 1k, 10k, 50k images (about 1 GB of JPEGs in --workdir)
    .venv/bin/python bench/data_scale.py --quick         # 1k and 5k: a couple of minutes
    .venv/bin/python bench/data_scale.py --sizes 2000 --workdir /tmp/cw-bench --out result.md

For each size, a synthetic imagefolder of distinct 448x448 JPEGs (metadata.jsonl + images; made
once, reused from --workdir) is trained for one step on the demo model with the real command,
`caption-wizard run ... train.max_steps=1 --plain`, twice, with a fresh data cache before the first:

- first run: the front end reads, verifies (decodes) every image in parallel and writes the index;
  the training process reads the index;
- second run (replay of the same data): the index is reused, no image is opened to verify.

Reported per run: seconds from the command's start to the first training step (its "log" event),
the data work in it (front end: read + verify or reuse; training process: read the index, tokenize
the captions, set up the image store), images/s verified (first run), and the peak RSS of any process
of the run (front end, training process or DataLoader worker: ru_maxrss of the waited-for children).
Targets (2 cores): >= 1,000 images/s verified; the second run's data work under 3 s; 50k images under
300 MB of RSS more than 1k.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "caption-wizard")
SIZE = 448


# ----------------------------------------------------------------------------- the data
def _write_images(args: tuple[str, int, int]) -> None:
    import numpy as np
    from PIL import Image

    folder, start, stop = args
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        small = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)  # distinct content, photo-like size on disk
        img = Image.fromarray(small).resize((SIZE, SIZE), Image.BILINEAR)
        img.save(Path(folder) / f"{i:06d}.jpg", quality=85)


def make_set(workdir: Path, n: int) -> Path:
    folder = workdir / f"jpegs-{n}"
    meta = folder / "metadata.jsonl"
    if meta.is_file() and sum(1 for _ in open(meta, encoding="utf-8")) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    step = 500
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(_write_images, [(str(folder), s, min(n, s + step)) for s in range(0, n, step)]))
    with open(meta, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"file_name": f"{i:06d}.jpg", "text": f"a blurry colour patchwork, picture {i}"}) + "\n")
    return folder


# ----------------------------------------------------------------------------- one run
RECIPE_OVERRIDES = ["data.format=auto", "data.max_samples=null", "data.language=en", "data.eval_fraction=0",
                    "train.max_steps=1", "train.logging_steps=1", "train.save_steps=1000", "train.batch_size=8"]
WRAP = ("import resource, subprocess, sys, time\n"
        "t = time.time(); p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(p.stdout + p.stderr)\n"
        "print('@@', t, p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def one_run(dataset: Path, runs_dir: Path, cache: Path) -> dict:
    env = dict(os.environ, CAPTION_WIZARD_CACHE=str(cache), NO_COLOR="1", TQDM_DISABLE="1", COLUMNS="200")
    argv = [CLI, "run", str(ROOT / "recipes" / "demo-shapes.yaml"), f"data.dataset={dataset}", *RECIPE_OVERRIDES,
            "--plain", "--runs-dir", str(runs_dir)]
    before = set(runs_dir.iterdir()) if runs_dir.is_dir() else set()
    out = subprocess.run([sys.executable, "-c", WRAP, *argv], capture_output=True, text=True, env=env).stdout
    t0, rc, maxrss = out.rsplit("@@", 1)[1].split()
    if rc != "0":
        raise SystemExit(f"run failed ({rc}):\n{out[-3000:]}")
    run_dir = next(iter(set(runs_dir.iterdir()) - before))
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    first_step = next(e["t"] for e in events if e["type"] == "log")
    log = (run_dir / "train.log").read_text()
    front = re.search(r"(\d[\d,]*) images checked in ([\d.]+)s \(([\d,]+)/s\)|index reused .* in ([\d.]+)s", out)
    read = float(re.search(r"data: read from .* in ([\d.]+)s", log).group(1))
    build = float(re.search(r"data: \d+ training targets .* in ([\d.]+)s", log).group(1))
    front_s = float(front.group(2) or front.group(4))
    return {"to_first_step": first_step - float(t0), "front_s": front_s, "read_s": read, "build_s": build,
            "data_s": front_s + read + build, "rate": int(front.group(3).replace(",", "")) if front.group(3) else None,
            "cached": "(cached)" in log, "maxrss_mb": int(maxrss) / 1024}


def _check_paths(paths: list[str]) -> int:
    from wizard.data.examples import inspect_image_file

    return sum(inspect_image_file(Path(p))[1] is None for p in paths)


def compare_pools(dataset: Path, n: int = 2000, rounds: int = 2) -> dict[str, float]:
    """Images/s checking the same files (read, hash, decode) serially, in threads and in processes
    (their start-up included), best of `rounds`, alternating."""
    from concurrent.futures import ThreadPoolExecutor

    paths = [str(p) for p in sorted(dataset.glob("*.jpg"))[:n]]
    chunks = [paths[i:i + 128] for i in range(0, len(paths), 128)]
    cores = os.cpu_count() or 1

    def pooled(kind, workers):
        with kind(workers) as pool:
            return sum(pool.map(_check_paths, chunks))

    ways = {"one thread": lambda: _check_paths(paths),
            f"{2 * cores} threads (what caption-wizard uses)": lambda: pooled(ThreadPoolExecutor, 2 * cores),
            f"{cores} processes": lambda: pooled(ProcessPoolExecutor, cores)}
    best = {k: 0.0 for k in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            t = time.perf_counter()
            assert way() == len(paths)
            best[name] = max(best[name], len(paths) / (time.perf_counter() - t))
    return best


def bench(sizes: list[int], workdir: Path) -> list[dict]:
    rows = []
    for n in sizes:
        t = time.perf_counter()
        dataset = make_set(workdir, n)
        print(f"{n:,} images ready in {time.perf_counter() - t:.0f}s; running", file=sys.stderr, flush=True)
        cache, runs_dir = workdir / f"cache-{n}", workdir / f"runs-{n}"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(runs_dir, ignore_errors=True)
        first = one_run(dataset, runs_dir, cache)
        second = one_run(dataset, runs_dir, cache)
        rows.append({"n": n, "first": first, "second": second})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        shutil.rmtree(runs_dir, ignore_errors=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| images | run | to first step | data work (front end + read index + build) | images/s verified | "
             "pixel cache | peak RSS |", "|---:|---|---:|---|---:|---|---:|"]
    for r in rows:
        for which in ("first", "second"):
            m = r[which]
            rate = f"{m['rate']:,}" if m["rate"] else "-"
            cache = "cached" if m["cached"] else "per batch, workers"
            lines.append(f"| {r['n']:,} | {which} | {m['to_first_step']:.1f} s | {m['data_s']:.2f} s ({m['front_s']:.2f}"
                         f" + {m['read_s']:.2f} + {m['build_s']:.2f}) | {rate} | {cache} | {m['maxrss_mb']:.0f} MB |")
    if len(rows) > 1:
        small, big = rows[0], rows[-1]
        extra = max(big[w]["maxrss_mb"] for w in ("first", "second")) - max(small[w]["maxrss_mb"] for w in ("first", "second"))
        lines.append(f"\nPeak RSS, {big['n']:,} images minus {small['n']:,}: {extra:+.0f} MB.")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1k and 5k images only")
    p.add_argument("--sizes", default=None, help="comma-separated image counts (default 1000,10000,50000)")
    p.add_argument("--workdir", default=None, help="where the JPEGs, caches and runs go (default: a temp folder)")
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    args = p.parse_args()
    sizes = [int(s) for s in (args.sizes or ("1000,5000" if args.quick else "1000,10000,50000")).split(",")]
    workdir = Path(args.workdir or Path(tempfile.gettempdir()) / "caption-wizard-data-scale")
    workdir.mkdir(parents=True, exist_ok=True)
    pools = compare_pools(make_set(workdir, sizes[0]))
    rows = bench(sizes, workdir)
    head = (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")
    pools_text = ", ".join(f"{k} {v:,.0f}/s" for k, v in pools.items())
    text = f"{head}\n\n{table(rows)}\n\nChecking the same {min(2000, sizes[0]):,} JPEGs: {pools_text}.\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
