"""Terminal drawing of what library code reports: progress.RichProgress (status, bars, lines) and
download_progress.RichDownloadProgress (the hub's per-file events).

May import rich, wizard.console, and the library layers for their event protocols and units (hub.progress,
progress, units). Library modules never import ui: the front end (commands, ask, runner's callers) hands a
ui object in as `progress=`.
"""
