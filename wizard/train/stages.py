"""Start-up progress the dashboard shows: "building the dataset: reading images (k/N)".

    loader = ImageProgress(recorder, total)     # wraps wizard.data.load_image, counts calls
    build_dataset(..., loader=loader)           # images are read (and processed) once, here
    loader.finish()                             # later calls (per-batch loading) say nothing

Progress goes out as status messages (recorder.status("running", text)): at most every half
second, at most every 5% of the images (21 lines at most in --plain output), and at the last one.
"""

from __future__ import annotations

import time

MIN_INTERVAL_S = 0.5
STEPS = 20  # progress messages per dataset, at most (plus the last one)


class ImageProgress:
    def __init__(self, recorder, total: int, loader=None):
        if loader is None:
            from wizard.data import load_image as loader
        self.recorder, self.total, self.loader = recorder, total, loader
        self.done, self.last, self.active, self.next = 0, 0.0, True, 1

    def __call__(self, example):
        image = self.loader(example)
        if self.active:
            self.done += 1
            now = time.monotonic()
            due = self.done >= self.next and now - self.last >= MIN_INTERVAL_S
            if due or self.done == self.total:
                self.last, self.next = now, self.done + max(1, self.total // STEPS)
                self.recorder.status("running", f"building the dataset: reading images ({self.done}/{self.total})")
        return image

    def finish(self) -> None:
        self.active = False
