"""macOS memory readings from ``sysctl`` and ``vm_stat`` output. Parsers are pure and
tested against captured outputs; ``read_memory`` runs the two commands."""

from __future__ import annotations

import re
import subprocess
from typing import Any

SYSCTL_NAMES = ("hw.memsize", "kern.memorystatus_vm_pressure_level", "kern.memorystatus_level",
                "vm.swapusage")  # fmt: skip
# kern.memorystatus_vm_pressure_level: the kernel's own verdict (what Activity Monitor shows).
PRESSURE_LEVELS = {1: "normal", 2: "warning", 4: "critical"}
_UNITS = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_sysctl(text: str) -> dict[str, str]:
    """``name: value`` lines (``sysctl a b c`` output) as a dict of strings."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    return out


def _size(text: str) -> int:
    m = re.fullmatch(r"([\d.]+)([BKMGT]?)", text.strip())
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "B"])


def parse_swapusage(value: str) -> tuple[int, int]:
    """``total = 2048.00M  used = 1041.25M  free = 1006.75M  (encrypted)`` -> (total, used)."""
    fields = dict(re.findall(r"(\w+)\s*=\s*([\d.]+[BKMGT]?)", value))
    return _size(fields.get("total", "0")), _size(fields.get("used", "0"))


def parse_vm_stat(text: str) -> tuple[int, dict[str, int]]:
    """(page size, pages per statistic) from ``vm_stat`` output."""
    m = re.search(r"page size of (\d+) bytes", text)
    page = int(m.group(1)) if m else 4096
    pages: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        name, sep, value = line.rpartition(":")
        value = value.strip().rstrip(".")
        if sep and value.isdigit():
            pages[name.strip().strip('"')] = int(value)
    return page, pages


def memory_from(sysctl: dict[str, str], vm_stat: str) -> dict[str, Any]:
    """Memory the way Activity Monitor counts it: used = app (anonymous minus purgeable)
    + wired + compressed; available = total - used."""
    total = int(sysctl.get("hw.memsize", "0") or 0)
    page, pages = parse_vm_stat(vm_stat)
    wired = pages.get("Pages wired down", 0)
    compressed = pages.get("Pages occupied by compressor", 0)
    if "Anonymous pages" in pages:
        app = pages["Anonymous pages"] - pages.get("Pages purgeable", 0)
    else:  # older releases lack the anonymous/file-backed split
        app = pages.get("Pages active", 0)
    used = min(total, max(0, (app + wired + compressed) * page))
    swap_total, swap_used = parse_swapusage(sysctl.get("vm.swapusage", ""))
    level_raw = sysctl.get("kern.memorystatus_vm_pressure_level", "")
    level = PRESSURE_LEVELS.get(int(level_raw), "normal") if level_raw.isdigit() else "normal"
    free_pct = sysctl.get("kern.memorystatus_level", "")
    return {
        "mem_total": total,
        "mem_used": used,
        "mem_available": max(0, total - used),
        "swap_total": swap_total,
        "swap_used": swap_used,
        "pressure": level,
        # memorystatus_level is the share of memory free (what `memory_pressure` prints).
        "pressure_pct": float(100 - int(free_pct)) if free_pct.isdigit() else None,
    }


def read_memory() -> dict[str, Any]:
    """Run ``sysctl`` and ``vm_stat`` once each and read memory, swap and pressure."""
    sysctl = subprocess.run(["sysctl", *SYSCTL_NAMES], capture_output=True, text=True, timeout=5)
    vm = subprocess.run(["vm_stat"], capture_output=True, text=True, timeout=5)
    return memory_from(parse_sysctl(sysctl.stdout), vm.stdout)
