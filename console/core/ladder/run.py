"""Driving the ladder: run each step at its concurrency, summarise it, stop at the knee."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from console.core.ladder import machine
from console.core.ladder.client import EndpointClient
from console.core.ladder.plan import LadderSpec, prompt_for, requests_for_step
from console.core.ladder.stats import RequestRecord, summarise_step
from console.core.ladder.verdict import breaches, p95_ratio

MACHINE_COLUMNS = ("server_rss_peak_mb", "swap_delta_mb", "swap_growth_mb",
                   "mem_used_pct_peak", "mem_pressure_peak", "load_peak")  # fmt: skip


@dataclass(slots=True)
class LadderResult:
    """Everything a run produced; filled in as it goes, so a cancelled run still has
    the steps it finished."""

    spec: LadderSpec
    server: dict[str, Any] = field(default_factory=dict)
    records: list[RequestRecord] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    knee: dict[str, Any] | None = None
    stopped: str = "not started"
    started_at: float = 0.0
    finished_at: float = 0.0


# Told where the ladder is: (step index, concurrency, requests done, requests planned or
# None when the step runs for a duration), at a step's start and after every request.
Progress = Callable[[int, int, int, int | None], None]


async def run_step(client: EndpointClient, spec: LadderSpec, step: int, concurrency: int,
                   progress: Progress | None = None) -> tuple[list[RequestRecord], float]:  # fmt: skip
    """``concurrency`` workers send requests back to back until the step's request
    count is sent (or its duration is up). Returns the records and the wall time."""
    total = requests_for_step(spec, concurrency)
    records: list[RequestRecord] = []
    done = 0
    t0 = time.perf_counter()
    deadline = t0 + spec.duration if spec.duration is not None else None
    next_seq = 0

    async def worker(w: int) -> None:
        nonlocal next_seq, done
        while True:
            if total is not None and next_seq >= total:
                return
            if deadline is not None and time.perf_counter() >= deadline:
                return
            seq = next_seq
            next_seq += 1
            record = RequestRecord(step=step, concurrency=concurrency, seq=seq, worker=w, start=0.0)
            records.append(record)
            await client.measure(record, prompt_for(spec, seq))
            done += 1
            if progress is not None:
                progress(step, concurrency, done, total)

    if progress is not None:
        progress(step, concurrency, 0, total)
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return records, time.perf_counter() - t0


def locate_server(spec: LadderSpec) -> tuple[bool, int | None]:
    """Is the server on this machine, and which pid serves it (``--server-pid`` or the
    process listening on the URL's port)?"""
    if spec.server_pid is not None:
        return True, spec.server_pid
    host = urlsplit(spec.url).hostname or ""
    if not machine.is_local_host(host):
        return False, None
    return True, machine.listening_pid(machine.url_port(spec.url))


def progress_line(row: dict[str, Any], total_steps: int, ratio: float | None) -> str:
    """One log line per step (the console shows the job's log tail)."""

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}s"

    parts = [
        f"step {row['step']}/{total_steps} c={row['concurrency']}:",
        f"{row['requests']} req",
        f"e2e p50 {s(row['e2e_p50'])} p95 {s(row['e2e_p95'])}" + (f" ({ratio:.2f}x)" if ratio else ""),
        f"ttft p95 {s(row['ttft_p95'])}",
        f"{row['tokens_per_s'] or 0:.1f} tok/s",
        f"{row['requests_per_s'] or 0:.2f} req/s",
        f"errors {row['error_rate']:.1%}",
    ]
    if row.get("server_rss_peak_mb") is not None:
        parts.append(f"rss {row['server_rss_peak_mb']:.0f}MB")
    if row.get("swap_delta_mb") is not None:
        parts.append(f"swap {row['swap_delta_mb']:+.0f}MB load {row['load_peak']:.2f}")
    return "  ".join(parts)


async def run_ladder(spec: LadderSpec, result: LadderResult, *, client: EndpointClient | None = None,
                     log: Callable[[str], None] = print,
                     monitor_source: Callable[[int | None], machine.MachineSample] = machine.read_sample,
                     progress: Progress | None = None) -> LadderResult:  # fmt: skip
    """Run the steps in order and stop after the first one that breaks an SLO (the knee).
    ``progress`` hears about every finished request (the console's live view)."""
    own_client = client is None
    client = client or EndpointClient(spec)
    result.started_at = time.time()
    result.stopped = "running"
    try:
        local, pid = locate_server(spec)
        result.server = {"url": spec.url, "local": local, "pid": pid, **await client.detect()}
        log(f"ladder: {spec.model} at {spec.url} ({result.server['api']}), steps "
            f"{','.join(map(str, spec.steps))}, "
            + (f"{spec.requests} requests" if spec.requests else f"{spec.duration:g}s")
            + f" per step, max_tokens {spec.max_tokens}, {'streaming' if spec.stream else 'not streaming'}"
            + (f"; server pid {pid}" if pid else "; server not on this machine" if not local else ""))  # fmt: skip
        monitor = machine.StepMonitor(pid, spec.sample_interval, monitor_source) if local else None
        baseline: dict[str, Any] | None = None
        for index, concurrency in enumerate(spec.steps, 1):
            if monitor:
                monitor.begin()
            records, wall = await run_step(client, spec, index, concurrency, progress)
            sampled = await monitor.end() if monitor else {}
            row = summarise_step(index, concurrency, records, wall)
            row.update({k: sampled.get(k) for k in MACHINE_COLUMNS})
            result.records.extend(records)
            result.steps.append(row)
            if baseline is None:
                baseline = row
            growth = row["swap_growth_mb"] * machine.MB if row["swap_growth_mb"] is not None else None
            found = breaches(row, baseline if index > 1 else None, spec.slo, growth)
            log(progress_line(row, len(spec.steps), p95_ratio(row, baseline) if index > 1 else None))
            if found:
                result.knee = {"step": index, "concurrency": concurrency,
                               "breaches": [b.to_dict() for b in found]}  # fmt: skip
                result.stopped = f"knee at concurrency {concurrency}: " + "; ".join(b.message for b in found)
                log(result.stopped)
                break
        else:
            result.stopped = f"no knee: all {len(spec.steps)} steps within the SLOs"
            log(result.stopped)
    except asyncio.CancelledError:
        result.stopped = f"cancelled after {len(result.steps)} of {len(spec.steps)} steps"
        raise
    finally:
        result.finished_at = time.time()
        if own_client:
            await client.aclose()
    return result
