"""Platform readers: macOS parsers against captured sysctl/vm_stat outputs, Linux
parsers against /proc captures and for real on this machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

from console.core.signals import linux, macos
from console.core.signals.sources import SystemSource, match_pattern
from tests.signals.conftest import FIXTURES

MIB = 1024 * 1024


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_macos_under_pressure() -> None:
    mem = macos.memory_from(macos.parse_sysctl(fixture("macos_sysctl.txt")), fixture("macos_vm_stat.txt"))
    assert mem["mem_total"] == 16 * 1024**3
    assert mem["swap_total"] == 3072 * MIB
    assert mem["swap_used"] == int(2621.5 * MIB)
    assert mem["pressure"] == "warning"
    assert mem["pressure_pct"] == 62.0  # 100 - memorystatus_level (38% free)
    page = 16384
    used = (363288 - 4823 + 140532 + 231562) * page  # app + wired + compressed
    assert mem["mem_used"] == used
    assert mem["mem_available"] == 16 * 1024**3 - used


def test_macos_calm_machine_without_swap_and_old_vm_stat() -> None:
    mem = macos.memory_from(macos.parse_sysctl(fixture("macos_sysctl_normal.txt")),
                            fixture("macos_vm_stat_old.txt"))  # fmt: skip
    assert mem["pressure"] == "normal"
    assert (mem["swap_total"], mem["swap_used"]) == (0, 0)
    assert mem["mem_used"] == (812736 + 402101 + 41022) * 4096  # active + wired + compressed


def test_macos_parsers() -> None:
    page, pages = macos.parse_vm_stat(fixture("macos_vm_stat.txt"))
    assert page == 16384
    assert pages["Translation faults"] == 812934720
    assert macos.parse_swapusage("total = 1.50G  used = 512.00K  free = 1.50G") == (
        int(1.5 * 1024**3), 512 * 1024)  # fmt: skip
    assert macos.memory_from({"kern.memorystatus_vm_pressure_level": "4"}, "")["pressure"] == "critical"


def test_linux_parsers() -> None:
    mem = linux.memory_from(linux.parse_meminfo(fixture("linux_meminfo.txt")),
                            linux.parse_psi(fixture("linux_psi_memory.txt")))  # fmt: skip
    assert mem["mem_total"] == 16303884 * 1024
    assert mem["mem_available"] == 1203344 * 1024
    assert mem["swap_used"] == (8388604 - 5242876) * 1024
    assert mem["pressure"] == "warning" and mem["pressure_pct"] == 23.51


@pytest.mark.parametrize(
    ("psi", "available", "level"),
    [({"some": {"avg10": 1.0}, "full": {"avg10": 0.0}}, 0.5, "normal"),
     ({"some": {"avg10": 12.0}, "full": {"avg10": 0.0}}, 0.5, "warning"),
     ({"some": {"avg10": 50.0}, "full": {"avg10": 15.0}}, 0.5, "critical"),
     ({"some": {"avg10": 0.0}}, 0.03, "critical"),
     (None, 0.5, "normal"), (None, 0.08, "warning"), (None, 0.01, "critical")],
)  # fmt: skip
def test_linux_pressure_levels(psi, available: float, level: str) -> None:  # type: ignore[no-untyped-def]
    assert linux.pressure_level(psi, 1000, int(1000 * available))[0] == level


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="needs Linux /proc")
def test_linux_reader_for_real() -> None:
    mem = linux.read_memory()
    assert 0 < mem["mem_available"] <= mem["mem_total"]
    assert mem["mem_used"] == mem["mem_total"] - mem["mem_available"]
    assert 0 <= mem["swap_used"] <= mem["swap_total"] or mem["swap_total"] == 0
    assert mem["pressure"] in ("normal", "warning", "critical")


def test_system_source_for_real(tmp_path: Path) -> None:
    me = os.path.basename(psutil.Process().cmdline()[0])  # python3, python3.11...
    source = SystemSource([str(tmp_path), str(tmp_path / "not" / "yet")], [me], top=5)
    reading = source.read()
    for key in ("load1", "load5", "load15", "cores", "mem_total", "mem_used", "mem_available",
                "swap_total", "swap_used", "pressure", "pressure_pct", "disk_free",
                "cpu_percent", "top", "processes"):  # fmt: skip
        assert key in reading, key
    assert reading["cores"] >= 1 and reading["load1"] >= 0
    assert set(reading["disk_free"]) == {str(tmp_path), str(tmp_path / "not" / "yet")}
    assert all(v > 0 for v in reading["disk_free"].values())
    assert len(reading["cpu_percent"]) == reading["cores"]
    assert 1 <= len(reading["top"]) <= 5
    assert reading["top"] == sorted(reading["top"], key=lambda p: -p["rss"])
    # The pattern names this process's program, so it is found even if it is small.
    assert any(p["pid"] == os.getpid() and p["pgid"] == os.getpgid(0) for p in reading["processes"])
    if sys.platform.startswith("linux"):
        assert reading["pressure_pct"] is None or reading["pressure_pct"] >= 0


@pytest.mark.parametrize(
    ("pattern", "argv", "hit"),
    [("ollama pull", ["/usr/local/bin/ollama", "pull", "llama3"], True),
     ("ollama pull", ["ollama", "serve"], False),
     ("ollama run", ["ollama", "runner", "--model", "x"], False),
     ("mlx_lm.server", ["/opt/py/bin/python3", "-m", "mlx_lm.server", "--port", "8080"], True),
     ("lms load", ["lms", "load", "qwen"], True), ("lms load", [], False)],
)  # fmt: skip
def test_heavy_patterns(pattern: str, argv: list[str], hit: bool) -> None:
    assert match_pattern(pattern, argv) is hit


def test_processes_are_rescanned_only_every_process_interval(tmp_path: Path) -> None:
    source = SystemSource([str(tmp_path)], [], top=3, process_interval=3600)
    first = source.read()["processes"]
    assert first and source.read()["processes"] is first  # reused, not walked again
    source.process_interval = 0
    assert source.read()["processes"] is not first
