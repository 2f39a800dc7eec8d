"""Start-up progress the dashboard shows: "building the dataset: reading images (k/N)".

    loader = ImageProgress(recorder, total)     # wraps wizard.data.load_image, counts calls
    build_dataset(..., loader=loader)           # images are read (and processed) once, here
    loader.finish()                             # later calls (per-batch loading) say nothing

Progress goes out as status messages (recorder.status("running", text)), at most every half
second and at the last image, so a large dataset does not flood events.jsonl.
"""

from __future__ import annotations

import time

MIN_INTERVAL_S = 0.5


class ImageProgress:
    def __init__(self, recorder, total: int, loader=None):
        if loader is None:
            from wizard.data import load_image as loader
        self.recorder, self.total, self.loader = recorder, total, loader
        self.done, self.last, self.active = 0, 0.0, True

    def __call__(self, example):
        image = self.loader(example)
        if self.active:
            self.done += 1
            now = time.monotonic()
            if now - self.last >= MIN_INTERVAL_S or self.done == self.total:
                self.last = now
                self.recorder.status("running", f"building the dataset: reading images ({self.done}/{self.total})")
        return image

    def finish(self) -> None:
        self.active = False
