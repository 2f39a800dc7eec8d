"""caption-wizard download MODEL_ID [--revision R] [--dataset [--subset S]]

    caption-wizard download Qwen/Qwen2-VL-2B-Instruct [--revision R]
    caption-wizard download AI-ModelScope/M3IT --dataset --subset coco-cn

Fetches into the cache a run would use (wizard/hub), with a progress bar on stderr, then says what
is there: how much was downloaded, the revision, the files and the folder (on stdout).
"""

from __future__ import annotations

import time
from pathlib import Path


def cmd_download(args) -> int:
    from rich.markup import escape

    from wizard.console import console, console_err
    from wizard.hub import check_repo_id, fetch_snapshot, resolve_dataset_snapshot, resolve_local
    from wizard.ui.download_progress import RichDownloadProgress
    from wizard.units import fmt_bytes

    started = time.monotonic()
    progress = RichDownloadProgress(console_err)
    if getattr(args, "dataset", False):
        snap = resolve_dataset_snapshot(args.model_id, getattr(args, "subset", None), args.revision,
                                        progress=progress)
    else:
        folder = Path(args.model_id).expanduser()
        if folder.is_dir():
            resolved = resolve_local(args.model_id, folder)
            console.print(f"{args.model_id} is a local folder: nothing to download "
                          f"({len(resolved.files)} files, use model.source=local)", markup=False)
            return 0
        check_repo_id(args.model_id, "MODEL_ID")
        snap = fetch_snapshot(args.model_id, "model", revision=args.revision or "master", progress=progress)
    how = (f"downloaded {fmt_bytes(snap.downloaded)} in {time.monotonic() - started:.1f} s"
           + (f" (resumed: {fmt_bytes(snap.resumed)} were already here from an earlier try)" if snap.resumed else "")
           if snap.downloaded else "already in the cache (no download)")
    revision = snap.requested if snap.revision == snap.requested else f"{snap.requested} ({snap.revision})"
    console.print(f"[green]✓[/] {escape(snap.repo_id)}: {how}")
    console.print(f"  revision  {revision}", markup=False)
    console.print(f"  files     {len(snap.files)} ({fmt_bytes(snap.total_size)})", markup=False)
    console.print(f"  path      {snap.path}", soft_wrap=True, markup=False)
    return 0
