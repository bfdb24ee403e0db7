"""The server's process and the host during each step: peak resident memory, swap,
memory pressure and load. Only meaningful when the server runs on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

MB = 1024.0 * 1024.0


def url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def is_local_host(host: str) -> bool:
    """Does ``host`` name this machine (loopback or one of its interface addresses)?"""
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    mine = {a.address.split("%")[0] for nics in psutil.net_if_addrs().values() for a in nics}
    for addr in addrs:
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(addr.split("%")[0]).is_loopback:
                return True
        if addr.split("%")[0] in mine:
            return True
    return False


def listening_pid(port: int) -> int | None:
    """The pid listening on TCP ``port`` on this machine, if we may see it.

    The system-wide table is tried first; where it is denied (macOS without root) or
    hides other processes' pids, each of our processes is asked for its own sockets.
    """
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return conn.pid
    except (psutil.AccessDenied, PermissionError):
        pass
    for proc in psutil.process_iter():
        try:
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return proc.pid
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, PermissionError):
            continue
    return None


def process_tree_rss(pid: int) -> int | None:
    """Resident bytes of ``pid`` and its children (Ollama serves from child runners)."""
    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += child.memory_info().rss
    return total


def memory_pressure() -> float | None:
    """Linux: PSI ``some avg10`` (% of time stalled on memory). macOS: the kernel's
    pressure level (1 normal, 2 warning, 4 critical). None where neither is readable."""
    psi = Path("/proc/pressure/memory")
    if psi.exists():
        try:
            for field in psi.read_text().split("\n", 1)[0].split():
                if field.startswith("avg10="):
                    return float(field[6:])
        except (OSError, ValueError):
            return None
    if sys.platform == "darwin":
        return _darwin_pressure_level()
    return None


def _darwin_pressure_level() -> float | None:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        value = ctypes.c_int(0)
        size = ctypes.c_size_t(ctypes.sizeof(value))
        rc = libc.sysctlbyname(b"kern.memorystatus_vm_pressure_level", ctypes.byref(value),
                               ctypes.byref(size), None, ctypes.c_size_t(0))  # fmt: skip
        return float(value.value) if rc == 0 else None
    except (OSError, AttributeError):
        return None


@dataclass(frozen=True, slots=True)
class MachineSample:
    at: float
    rss: int | None
    swap_used: int
    mem_used_pct: float
    pressure: float | None
    load1: float


def read_sample(pid: int | None) -> MachineSample:
    """One reading of the server process (when known) and the host. Non-blocking."""
    return MachineSample(
        at=time.time(),
        rss=process_tree_rss(pid) if pid else None,
        swap_used=psutil.swap_memory().used,
        mem_used_pct=psutil.virtual_memory().percent,
        pressure=memory_pressure(),
        load1=os.getloadavg()[0],
    )


def summarise_samples(samples: list[MachineSample], ladder_start_swap: int) -> dict[str, Any]:
    """Step columns from the samples taken during it."""
    if not samples:
        return {}
    rss = [s.rss for s in samples if s.rss is not None]
    pressure = [s.pressure for s in samples if s.pressure is not None]
    return {
        "server_rss_peak_mb": max(rss) / MB if rss else None,
        "swap_delta_mb": (samples[-1].swap_used - samples[0].swap_used) / MB,
        "swap_growth_mb": (max(s.swap_used for s in samples) - ladder_start_swap) / MB,
        "mem_used_pct_peak": max(s.mem_used_pct for s in samples),
        "mem_pressure_peak": max(pressure) if pressure else None,
        "load_peak": max(s.load1 for s in samples),
    }


class StepMonitor:
    """Samples in the background while a step runs; the next sample is scheduled only
    after the last one finished, so slow reads never pile up."""

    def __init__(self, pid: int | None, interval: float,
                 source: Callable[[int | None], MachineSample] = read_sample) -> None:  # fmt: skip
        self.pid = pid
        self.interval = interval
        self.source = source
        self.start_swap = source(pid).swap_used
        self.samples: list[MachineSample] = []
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            self.samples.append(await asyncio.to_thread(self.source, self.pid))
            await asyncio.sleep(self.interval)

    def begin(self) -> None:
        self.samples = []
        self._task = asyncio.create_task(self._loop())

    async def end(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.samples.append(self.source(self.pid))  # the state the step ended in
        return summarise_samples(self.samples, self.start_swap)


def cpu_name() -> str:
    """The CPU's marketing name where the OS tells it, else the architecture."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        with contextlib.suppress(OSError):
            for line in cpuinfo.read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    if sys.platform == "darwin":
        import subprocess

        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=5)  # fmt: skip
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
    return platform.processor() or platform.machine()


def machine_description() -> dict[str, Any]:
    """The host, for the report: OS, CPU, cores, memory."""
    vm = psutil.virtual_memory()
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpu": cpu_name(),
        "cores": psutil.cpu_count(logical=True),
        "memory_gb": round(vm.total / 1024**3, 1),
        "swap_gb": round(psutil.swap_memory().total / 1024**3, 1),
        "python": platform.python_version(),
    }
