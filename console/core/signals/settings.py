"""Range checks for the ``[signals]``, ``[gates]`` and ``[rules]`` config keys.

The config loader checks each value's type; these check what the type cannot say (a
positive interval, a share between 0 and 1, patterns that are words), so a bad value is
one line naming the key when the owner, ``twolane gates`` or ``twolane predict`` starts,
not a traceback from the sampler's thread later.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from console.core.config import ConfigError


def _positive(v: Any) -> bool:
    return math.isfinite(v) and v > 0


def _non_negative(v: Any) -> bool:
    return math.isfinite(v) and v >= 0


def _words(v: Any) -> bool:
    return all(isinstance(s, str) and s.strip() for s in v)


# key -> (check, what a good value is)
CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "signals.interval": (_positive, "a number of seconds above 0"),
    "signals.history_seconds": (_positive, "a number of seconds above 0"),
    "signals.model_dirs": (_words, "a list of directory paths (strings)"),
    "signals.top_processes": (_non_negative, "0 or more"),
    "signals.process_interval": (_non_negative, "0 or more seconds"),
    "signals.ollama_url": (lambda v: bool(v.strip()), "a URL such as http://127.0.0.1:11434"),
    "signals.runtime_overhead_mb": (_non_negative, "0 or more MB"),
    "gates.max_load_per_core": (_positive, "above 0 (1.0 = every core busy)"),
    "gates.min_free_disk_gb": (_non_negative, "0 or more GB"),
    "gates.max_swap_gb": (_non_negative, "0 or more GB"),
    "gates.swap_growth_mb": (_non_negative, "0 or more MB"),
    "gates.memory_headroom_gb": (_non_negative, "0 or more GB"),
    "gates.heavy_process_patterns": (_words, 'a list of commands such as ["ollama pull"]'),
    "gates.heavy_process_mem_share": (lambda v: 0 < v <= 1, "a share of memory above 0 and at most 1"),
    "rules.swap_high_seconds": (_non_negative, "0 or more seconds"),
    "rules.load_high_seconds": (_non_negative, "0 or more seconds"),
    "rules.swap_growth_gb": (_non_negative, "0 or more GB"),
    "rules.latency_factor": (lambda v: math.isfinite(v) and v >= 1, "1 or more"),
}


def check(cfg: Any) -> None:
    """Raise ConfigError naming the first signals/gates/rules key whose value is out of range."""
    for key, (ok, need) in CHECKS.items():
        value = cfg.get(key)
        if not ok(value):
            raise ConfigError(
                f"config key '{key}' ({cfg.source(key)}) must be {need}, got {value!r}"
            )
