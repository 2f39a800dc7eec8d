"""Byte sizes as people read them: one function, binary units (1 KiB = 1024 B), labelled so.

    fmt_bytes(1_500_000)          # '1.4 MiB'
    fmt_bytes(24 * GiB)           # '24.0 GiB'
    fmt_bytes(812 * MiB)          # '812 MiB'
    fmt_bytes(1_127_000_000, digits=2)   # '1.05 GiB' (when neighbouring figures must differ)

Every size the tool shows goes through here: the summary (download and memory side by side), the
estimate, downloads, the dashboard, the vision-cache notes and the machine description. GPU
makers' "80GB" in a device name is their label and is left as it is.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024**2
GiB = 1024**3
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def fmt_bytes(n: float, *, digits: int = 1) -> str:
    """`n` bytes in the largest binary unit that keeps the number at 1 or more; `digits` decimals
    below 100 of that unit, none from 100 up (and none for plain bytes)."""
    sign, size = ("-" if n < 0 else ""), abs(float(n))
    unit = 0
    while round(size) >= 1024 and unit < len(UNITS) - 1:  # never "1024 KiB"
        size /= 1024
        unit += 1
    if unit == 0:
        return f"{sign}{size:.0f} B"
    return f"{sign}{size:.{digits if round(size, digits) < 100 else 0}f} {UNITS[unit]}"
