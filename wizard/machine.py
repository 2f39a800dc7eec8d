"""What this machine has: CUDA GPUs (name, memory), RAM, CPU cores.

    from wizard.machine import detect_gpus, detect_machine
    detect_gpus()      # [GpuInfo(index=0, name='NVIDIA H100 80GB HBM3', total_bytes=85520809984)] or []
    detect_machine()   # Machine(gpus=(...), ram_bytes=..., cpu_count=...)

GPUs are read through NVML (nvidia-ml-py), not torch: importing torch takes
seconds and the wizard must open instantly. No driver, no library, no GPU: [].
CUDA_VISIBLE_DEVICES is honoured when it is a list of indices (GPUs are then
renumbered from 0, as CUDA numbers them).

Tests (and anyone curious about the GPU branches on a laptop) can pretend:
    CAPTION_WIZARD_FAKE_GPUS="NVIDIA H100:80,NVIDIA H100:80"   two 80 GiB GPUs
    CAPTION_WIZARD_FAKE_GPUS=""                                  no GPU, even on a GPU machine
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FAKE_GPUS_ENV = "CAPTION_WIZARD_FAKE_GPUS"
GiB = 1024**3


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total_bytes: int

    def describe(self) -> str:
        return f"GPU {self.index}: {self.name} ({self.total_bytes / GiB:.0f} GB)"


@dataclass(frozen=True)
class Machine:
    """The facts the questionnaire's defaults depend on (passed in, so the questions stay pure)."""

    gpus: tuple[GpuInfo, ...] = ()
    ram_bytes: int = 16 * GiB
    cpu_count: int = 2

    def describe(self) -> str:
        ram = f"{self.cpu_count} CPU cores, {self.ram_bytes / GiB:.1f} GB RAM"
        if not self.gpus:
            return f"{ram}, no CUDA GPU"
        names = {g.name for g in self.gpus}
        smallest = min(g.total_bytes for g in self.gpus) / GiB
        what = names.pop() if len(names) == 1 else "GPUs"
        each = " each" if len(self.gpus) > 1 else ""
        return f"{ram}, {len(self.gpus)} x {what} ({smallest:.0f} GB{each})"


def _parse_fake(spec: str) -> list[GpuInfo]:
    gpus = []
    for i, item in enumerate(x.strip() for x in spec.split(",")):
        if not item or item.lower() == "none":
            continue
        name, _, gib = item.rpartition(":")
        try:
            total = int(float(gib) * GiB)
        except ValueError:
            raise ValueError(f"{FAKE_GPUS_ENV}: {item!r} is not NAME:GiB (e.g. 'NVIDIA H100:80')") from None
        gpus.append(GpuInfo(len(gpus), name or f"fake GPU {i}", total))
    return gpus


def _visible(gpus: list[GpuInfo]) -> list[GpuInfo]:
    """Apply CUDA_VISIBLE_DEVICES when it lists indices; leave UUID/MIG forms alone."""
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return gpus
    spec = spec.strip()
    if spec == "" or spec == "-1":
        return []
    try:
        wanted = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        return gpus
    by_index = {g.index: g for g in gpus}
    return [GpuInfo(new, by_index[old].name, by_index[old].total_bytes)
            for new, old in enumerate(w for w in wanted if w in by_index)]


def _nvml_gpus() -> list[GpuInfo]:
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded / ...: no usable GPU
        return []
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            total = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            gpus.append(GpuInfo(i, name, total))
        return gpus
    except Exception:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def detect_gpus() -> list[GpuInfo]:
    """CUDA GPUs visible to a run started from here; [] when there are none (or no driver)."""
    fake = os.environ.get(FAKE_GPUS_ENV)
    if fake is not None:
        return _parse_fake(fake)
    return _visible(_nvml_gpus())


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * GiB


def detect_machine() -> Machine:
    gpus = detect_gpus()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Machine(gpus=tuple(gpus), ram_bytes=_ram_bytes(), cpu_count=cpus)
