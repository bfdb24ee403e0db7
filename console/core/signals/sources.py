"""Where readings come from. ``SystemSource`` reads this machine (blocking: the sampler
calls it in a worker thread); ``FakeSource`` is driven by tests, which set readings and
never sleep to see them move.

A reading is a dict with the sample fields (see ``sampler``) minus ``at``, ``thresholds``
and ``heavy``, plus ``processes``: the top processes by memory and every process whose
command line matches a heavy-process pattern, each ``{pid, pgid, name, cmdline, rss}``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import psutil

GIB = 1024**3


class Source(Protocol):
    def read(self) -> dict[str, Any]:
        """One reading of the machine (may block; never called on the event loop)."""
        ...


def match_pattern(pattern: str, argv: list[str]) -> bool:
    """Does ``argv`` run ``pattern`` (``"ollama pull"``, ``"mlx_lm.server"``)? The first
    word matches a program's base name anywhere in argv (``python -m mlx_lm.server``),
    the rest must follow it word for word."""
    words = pattern.split()
    if not words or not argv:
        return False
    head, rest = words[0], words[1:]
    for i, arg in enumerate(argv):
        if os.path.basename(arg) == head and argv[i + 1 : i + 1 + len(rest)] == rest:
            return True
    return False


def existing_dir(path: str | Path) -> Path:
    """``path`` or its nearest existing ancestor (where it would be created)."""
    p = Path(path).expanduser()
    while not p.exists() and p.parent != p:
        p = p.parent
    return p


def disk_free(paths: list[str]) -> dict[str, int]:
    out = {}
    for path in paths:
        with contextlib.suppress(OSError):
            out[path] = shutil.disk_usage(existing_dir(path)).free
    return out


class SystemSource:
    """This machine: /proc or sysctl+vm_stat for memory, psutil for CPU and processes."""

    def __init__(self, disk_paths: list[str], patterns: list[str], top: int = 10,
                 process_interval: float = 0.0) -> None:  # fmt: skip
        self.disk_paths = list(disk_paths)
        self.patterns = list(patterns)
        self.top = top
        # Walking every process costs 0.1-0.5 s on a busy machine: rescan only this often.
        self.process_interval = process_interval
        self._platform = sys.platform
        self._procs: list[dict[str, Any]] = []
        self._scanned_at: float | None = None
        psutil.cpu_percent(percpu=True)  # the first call only sets the baseline

    def read(self) -> dict[str, Any]:
        load1, load5, load15 = os.getloadavg()
        reading: dict[str, Any] = {
            "load1": load1,
            "load5": load5,
            "load15": load15,
            "cores": psutil.cpu_count() or os.cpu_count() or 1,
            **self.memory(),
            "disk_free": disk_free(self.disk_paths),
            "cpu_percent": psutil.cpu_percent(percpu=True),
        }
        now = time.monotonic()
        if self._scanned_at is None or now - self._scanned_at >= self.process_interval:
            self._procs = self._processes()
            self._scanned_at = now
        reading["processes"] = self._procs
        reading["top"] = [
            {"pid": p["pid"], "name": p["name"], "rss": p["rss"]}
            for p in sorted(reading["processes"], key=lambda p: -p["rss"])[: self.top]
        ]
        return reading

    def memory(self) -> dict[str, Any]:
        """Memory, swap and pressure with this platform's reader."""
        if self._platform == "darwin":
            from console.core.signals import macos

            return macos.read_memory()
        if Path("/proc/meminfo").exists():
            from console.core.signals import linux

            return linux.read_memory()
        vm, sw = psutil.virtual_memory(), psutil.swap_memory()  # other platforms
        return {"mem_total": vm.total, "mem_used": vm.total - vm.available,
                "mem_available": vm.available, "swap_total": sw.total, "swap_used": sw.used,
                "pressure": "normal", "pressure_pct": None}  # fmt: skip

    def _processes(self) -> list[dict[str, Any]]:
        if not self.top and not self.patterns:  # nothing to keep: skip the walk
            return []
        procs = []
        for proc in psutil.process_iter(["pid", "name", "cmdline", "memory_info"]):
            info = proc.info
            mem = info.get("memory_info")
            if mem is None:
                continue
            argv = info.get("cmdline") or []
            procs.append({"pid": info["pid"], "name": info.get("name") or "", "argv": argv,
                          "rss": int(mem.rss)})  # fmt: skip
        procs.sort(key=lambda p: -p["rss"])
        keep = procs[: self.top]
        keep += [p for p in procs[self.top :]
                 if any(match_pattern(pat, p["argv"]) for pat in self.patterns)]  # fmt: skip
        out = []
        for p in keep:
            try:
                pgid = os.getpgid(p["pid"])
            except (ProcessLookupError, PermissionError):
                continue
            out.append({"pid": p["pid"], "pgid": pgid, "name": p["name"],
                        "cmdline": " ".join(p["argv"]), "argv": p["argv"], "rss": p["rss"]})  # fmt: skip
        return out


def fake_reading(**overrides: Any) -> dict[str, Any]:
    """A calm machine: 8 cores, 16 GiB, no swap, plenty of disk, no processes."""
    base: dict[str, Any] = {
        "load1": 0.5, "load5": 0.5, "load15": 0.5, "cores": 8,
        "mem_total": 16 * GIB, "mem_used": 6 * GIB, "mem_available": 10 * GIB,
        "swap_total": 4 * GIB, "swap_used": 0, "pressure": "normal", "pressure_pct": 0.0,
        "disk_free": {}, "cpu_percent": [5.0] * 8, "top": [], "processes": [],
    }  # fmt: skip
    base.update(overrides)
    return base


class FakeSource:
    """Readings a test sets by hand: ``source.set(swap_used=3 * GIB)``."""

    def __init__(self, **overrides: Any) -> None:
        self.reading = fake_reading(**overrides)
        self.reads = 0

    def set(self, **fields: Any) -> None:
        self.reading.update(fields)

    def read(self) -> dict[str, Any]:
        self.reads += 1
        return copy.deepcopy(self.reading)
