"""ModelScope downloads: model weights and datasets, cache first. A library: it prints nothing.

    resolved = resolve_model(recipe.model, progress=RichDownloadProgress(console_err))
    resolved.path, resolved.revision, resolved.files     # folder to load; lock.json facts
    folder = resolve_dataset("AI-ModelScope/M3IT", subset="coco-cn")

    client.py    the ModelScope calls: resolve_model, resolve_dataset(_snapshot), fetch_snapshot,
                 listed_size, the reachability probe, the errors a user sees
    cache.py     the on-disk layout, our manifests, cached snapshots, the file selection, hashing
    progress.py  the DownloadProgress protocol a caller passes to see a download, and its tally

The Rich drawing of a download is front-end code (wizard/ui/download_progress.py); the command
`caption-wizard download` is wizard/commands/download.py. This package may import wizard.paths,
wizard.units, wizard.fsutil, wizard.errors and (for "did you mean") wizard.catalog; nothing of the
front end, and nothing above it imports its submodules' private names.
"""

from wizard.hub.cache import (Snapshot, cache_root, cached_download_size, cached_snapshot, hash_folder, in_cache,
                              repo_root, selection_key)
from wizard.hub.client import (DEFAULT_ENDPOINT, M3IT_CAPTION_SUBSETS, HubUnreachable, ResolvedModel, check_repo_id,
                               fetch_snapshot, hub_endpoint, listed_size, redact_url, resolve_dataset,
                               resolve_dataset_snapshot, resolve_local, resolve_model)
from wizard.hub.progress import DownloadProgress, DownloadTally, Silent

__all__ = [
    "DEFAULT_ENDPOINT", "M3IT_CAPTION_SUBSETS", "DownloadProgress", "DownloadTally", "HubUnreachable",
    "ResolvedModel", "Silent", "Snapshot", "cache_root", "cached_download_size", "cached_snapshot",
    "check_repo_id", "fetch_snapshot", "hash_folder", "hub_endpoint", "in_cache", "listed_size",
    "redact_url", "repo_root", "resolve_dataset", "resolve_dataset_snapshot", "resolve_local", "resolve_model",
    "selection_key",
]
