"""What this machine has: CUDA GPUs (name, memory), RAM, CPU cores.

    from wizard.machine import detect_gpus, detect_machine
    detect_gpus()      # [GpuInfo(index=0, name='NVIDIA H100 80GB HBM3', total_bytes=85520809984)] or []
    detect_machine()   # Machine(gpus=(...), ram_bytes=..., cpu_count=...)

GPUs are read through NVML (nvidia-ml-py), not torch: importing torch takes
seconds and the wizard must open instantly. No driver, no library, no GPU: [].
CUDA_VISIBLE_DEVICES is honoured, as indices or GPU UUIDs (GPUs are then renumbered
from 0, as CUDA numbers them). A training process reads its own GPU's memory through
the NVML handle matched by UUID or PCI bus id (`nvml_memory`): NVML's index order is
not CUDA's once CUDA_VISIBLE_DEVICES is set.

Tests (and anyone curious about the GPU branches on a laptop) can pretend:
    CAPTION_WIZARD_FAKE_GPUS="NVIDIA H100:80,NVIDIA H100:80"   two 80 GiB GPUs
    CAPTION_WIZARD_FAKE_GPUS=""                                  no GPU, even on a GPU machine
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wizard.units import GiB, fmt_bytes

FAKE_GPUS_ENV = "CAPTION_WIZARD_FAKE_GPUS"


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total_bytes: int
    uuid: str | None = None  # "GPU-8932f937-..." as NVML and CUDA_VISIBLE_DEVICES write it

    def describe(self) -> str:
        return f"GPU {self.index}: {self.name} ({fmt_bytes(self.total_bytes)})"


@dataclass(frozen=True)
class Machine:
    """The facts the questionnaire's defaults depend on (passed in, so the questions stay pure)."""

    gpus: tuple[GpuInfo, ...] = ()
    ram_bytes: int = 16 * GiB
    cpu_count: int = 2

    def describe(self) -> str:
        ram = f"{self.cpu_count} CPU cores, {fmt_bytes(self.ram_bytes)} RAM"
        if not self.gpus:
            return f"{ram}, no CUDA GPU"
        names = {g.name for g in self.gpus}
        smallest = min(g.total_bytes for g in self.gpus)
        what = names.pop() if len(names) == 1 else "GPUs"
        each = " each" if len(self.gpus) > 1 else ""
        return f"{ram}, {len(self.gpus)} x {what} ({fmt_bytes(smallest)}{each})"


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


def cuda_visible_entries(env: dict[str, str] | None = None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: None when unset (every GPU), else its entries (indices,
    UUIDs or their prefixes, MIG ids) up to the first "-1", which hides the rest ("" or "-1": none).
    The one parser of that variable: the machine's GPU list and the launch plan both use it."""
    spec = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return None
    entries = []
    for entry in (x.strip() for x in spec.split(",") if x.strip()):
        if entry == "-1":
            break
        entries.append(entry)
    return entries


def _visible(gpus: list[GpuInfo]) -> list[GpuInfo]:
    """The GPUs CUDA_VISIBLE_DEVICES leaves, renumbered from 0 (indices and UUID prefixes are matched;
    MIG ids are not, and stop the list as CUDA stops at the first entry it cannot use)."""
    entries = cuda_visible_entries()
    if entries is None:
        return gpus
    chosen = []
    for entry in entries:
        if entry.isdigit():
            match = [g for g in gpus if g.index == int(entry)]
        else:  # a UUID or a unique prefix of one (as CUDA accepts)
            match = [g for g in gpus if g.uuid and g.uuid.startswith(entry)]
        if len(match) != 1:
            break  # CUDA stops at the first entry it cannot use
        chosen.append(match[0])
    return [GpuInfo(new, g.name, g.total_bytes, g.uuid) for new, g in enumerate(chosen)]


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
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            gpus.append(GpuInfo(i, name, total, uuid.decode() if isinstance(uuid, bytes) else str(uuid)))
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


def peak_rss() -> int:
    """This process's peak resident set in bytes: VmHWM, the high-water mark of its own memory map.
    Not ru_maxrss: Linux carries that over exec from the forked parent's image, so a process
    started by a big one (a test runner that loaded models) would report the parent's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def detect_machine() -> Machine:
    gpus = detect_gpus()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Machine(gpus=tuple(gpus), ram_bytes=_ram_bytes(), cpu_count=cpus)


# ----------------------------------------------------------------------------- one CUDA device's memory
def cuda_device_ids(index: int) -> tuple[str | None, str | None]:
    """(UUID as NVML writes it, PCI bus id) of CUDA device `index` of this process (torch: imported here)."""
    import torch

    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    uuid = f"GPU-{uuid}" if uuid is not None and not str(uuid).startswith(("GPU-", "MIG-")) else uuid
    bus = getattr(props, "pci_bus_id", None)
    pci = (f"{getattr(props, 'pci_domain_id', 0):08X}:{bus:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"
           if isinstance(bus, int) else None)
    return (str(uuid) if uuid is not None else None), pci


_nvml_ready: bool | None = None


def nvml_memory(uuid: str | None, pci_bus_id: str | None) -> tuple[int | None, int | None]:
    """(used, total) bytes of the GPU with this UUID (else PCI bus id) per NVML; (None, None) without it."""
    global _nvml_ready
    try:
        import pynvml
    except ImportError:
        return None, None
    if _nvml_ready is None:
        try:
            pynvml.nvmlInit()
            _nvml_ready = True
        except Exception:
            _nvml_ready = False
    if not _nvml_ready:
        return None, None
    for how, key in ((pynvml.nvmlDeviceGetHandleByUUID, uuid), (pynvml.nvmlDeviceGetHandleByPciBusId, pci_bus_id)):
        if key is None:
            continue
        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(how(key))
            return int(info.used), int(info.total)
        except Exception:
            continue
    return None, None
