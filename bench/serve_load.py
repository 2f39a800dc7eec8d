"""Load on `caption-wizard serve`: N concurrent requests with the demo model, batching on vs off.

    .venv/bin/python bench/serve_load.py                        # 64 concurrent requests, 2 rounds
    .venv/bin/python bench/serve_load.py --requests 64 --rounds 3 --batch 8 --source runs/NAME

For each setting the real server starts as a subprocess (`caption-wizard serve SOURCE --max-batch-size B`
on 127.0.0.1), takes 4 warm-up requests, then all N requests are sent at once by N threads of the
official openai client (distinct demo images, data URIs). Reported per setting: answered/N, latency
p50/p95 (request sent -> reply read), images/s (N / wall time of the burst), and the server's
batches (from /health). Rounds alternate (batched, unbatched, batched, ...) so machine drift hits both.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures as cf
import io
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "caption-wizard")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(url: str) -> dict:
    with urllib.request.urlopen(url + "/health", timeout=5) as r:
        return json.loads(r.read())


def start(source: str, batch: int, wait_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([CLI, "serve", source, "--port", str(port), "--max-batch-size", str(batch),
                             "--batch-wait-ms", str(wait_ms)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            health(url)
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start in 120 s")


def data_uris(n: int) -> list[str]:
    from wizard.demo.shapes import make_shapes

    out = []
    for s in make_shapes(n, seed=2024):
        buf = io.BytesIO()
        s.image.save(buf, "PNG")
        out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def burst(url: str, model: str, uris: list[str]) -> dict:
    from openai import OpenAI

    client = OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=600)

    def one(uri: str) -> float:
        t = time.perf_counter()
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": uri}}]}])
        assert r.choices[0].message.content
        return time.perf_counter() - t

    for uri in uris[:4]:  # warm-up
        one(uri)
    before = health(url)
    started = time.perf_counter()
    with cf.ThreadPoolExecutor(len(uris)) as pool:
        futures = [pool.submit(one, u) for u in uris]
        latencies = [f.result() for f in futures if f.exception() is None]
    wall = time.perf_counter() - started
    after = health(url)
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    return {"answered": len(latencies), "sent": len(uris), "p50": statistics.median(latencies), "p95": q[18],
            "images_per_s": len(latencies) / wall, "wall": wall,
            "batches": after["batches"] - before["batches"], "largest_batch": after["largest_batch"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(ROOT / "wizard" / "assets" / "demo-base"))
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch", type=int, default=8, help="--max-batch-size when batching")
    p.add_argument("--wait-ms", type=float, default=10.0)
    args = p.parse_args()
    uris = data_uris(args.requests)
    model = Path(args.source).resolve().name
    results: dict[str, list[dict]] = {"batched": [], "unbatched": []}
    for r in range(args.rounds):
        for name, batch in (("batched", args.batch), ("unbatched", 1)):
            proc, url = start(args.source, batch, args.wait_ms)
            try:
                res = burst(url, model, uris)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            results[name].append(res)
            print(f"round {r + 1} {name:9s} answered {res['answered']}/{res['sent']}  p50 {res['p50']:.2f} s  "
                  f"p95 {res['p95']:.2f} s  {res['images_per_s']:.1f} images/s  "
                  f"({res['batches']} model calls, largest batch {res['largest_batch']})", flush=True)
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("p50", "p95", "images_per_s")}
           for k, v in results.items()}
    print(f"\n| setting | answered | p50 latency | p95 latency | images/s |\n|---|---:|---:|---:|---:|")
    for name, label in (("batched", f"batching on (up to {args.batch}, wait {args.wait_ms:g} ms)"),
                        ("unbatched", "batching off (--max-batch-size 1)")):
        answered = sum(x["answered"] for x in results[name])
        sent = sum(x["sent"] for x in results[name])
        print(f"| {label} | {answered}/{sent} | {med[name]['p50']:.2f} s | {med[name]['p95']:.2f} s | "
              f"{med[name]['images_per_s']:.1f} |")
    print(f"\nimages/s ratio batched/unbatched (median of {args.rounds}): "
          f"{med['batched']['images_per_s'] / med['unbatched']['images_per_s']:.2f}")


if __name__ == "__main__":
    main()
