"""Linux memory readings: ``/proc/meminfo`` and pressure stall information
(``/proc/pressure/memory``). Parsers are pure; ``read_memory`` does the file reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# PSI "some avg10" is the share of the last 10 s in which at least one task waited for
# memory; "full" means every non-idle task waited. Past these the machine is thrashing.
PSI_WARNING_SOME = 10.0
PSI_CRITICAL_FULL = 10.0
# Without PSI, fall back to how much memory is still available.
AVAILABLE_WARNING = 0.10
AVAILABLE_CRITICAL = 0.05


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as bytes per field (``MemTotal``, ``MemAvailable``, ``SwapFree``...)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        out[name.strip()] = value * 1024 if len(parts) > 1 and parts[1] == "kB" else value
    return out


def parse_psi(text: str) -> dict[str, dict[str, float]]:
    """``some avg10=1.00 avg60=0.50 avg300=0.10 total=123`` lines, by their first word."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        fields = {}
        for word in words[1:]:
            key, _, value = word.partition("=")
            try:
                fields[key] = float(value)
            except ValueError:
                continue
        out[words[0]] = fields
    return out


def pressure_level(psi: dict[str, dict[str, float]] | None, total: int, available: int) -> tuple[str, float | None]:
    """(``normal``|``warning``|``critical``, percent or None) from PSI, else from free memory."""
    share = available / total if total else 1.0
    if psi and "some" in psi:
        some = psi["some"].get("avg10", 0.0)
        full = psi.get("full", {}).get("avg10", 0.0)
        if full >= PSI_CRITICAL_FULL or share < AVAILABLE_CRITICAL:
            return "critical", some
        if some >= PSI_WARNING_SOME or share < AVAILABLE_WARNING:
            return "warning", some
        return "normal", some
    if share < AVAILABLE_CRITICAL:
        return "critical", None
    if share < AVAILABLE_WARNING:
        return "warning", None
    return "normal", None


def memory_from(meminfo: dict[str, int], psi: dict[str, dict[str, float]] | None) -> dict[str, Any]:
    total = meminfo.get("MemTotal", 0)
    available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
    swap_total = meminfo.get("SwapTotal", 0)
    level, pct = pressure_level(psi, total, available)
    return {
        "mem_total": total,
        "mem_available": available,
        "mem_used": max(0, total - available),
        "swap_total": swap_total,
        "swap_used": max(0, swap_total - meminfo.get("SwapFree", 0)),
        "pressure": level,
        "pressure_pct": pct,
    }


def read_memory(proc: Path = Path("/proc")) -> dict[str, Any]:
    """Memory, swap and pressure of this machine, read from ``/proc``."""
    meminfo = parse_meminfo((proc / "meminfo").read_text())
    try:
        psi = parse_psi((proc / "pressure" / "memory").read_text())
    except OSError:  # kernels without PSI (or with it disabled)
        psi = None
    return memory_from(meminfo, psi)
