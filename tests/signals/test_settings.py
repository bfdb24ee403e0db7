"""Out-of-range [signals], [gates] and [rules] values: one line naming the key and what a
good value is, exit 2, before the sampler ever runs (not a traceback from its thread)."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.core import config
from console.core.config import ConfigError
from console.core.signals import settings
from tests.conftest import run_twolane


def test_the_defaults_pass() -> None:
    settings.check(config.load(environ={}))


def test_every_key_with_a_default_is_checked() -> None:
    signals_keys = {k for k in config.DEFAULTS if k.split(".")[0] in ("signals", "gates", "rules")}
    assert set(settings.CHECKS) == signals_keys


@pytest.mark.parametrize(
    ("key", "value", "need"),
    [("signals.interval", 0.0, "above 0"),
     ("signals.history_seconds", -5, "above 0"),
     ("signals.model_dirs", ["/models", 3], "list of directory paths"),
     ("signals.top_processes", -1, "0 or more"),
     ("signals.ollama_url", " ", "a URL"),
     ("gates.max_load_per_core", -1.0, "above 0"),
     ("gates.max_swap_gb", float("nan"), "0 or more GB"),
     ("gates.heavy_process_patterns", ["ollama pull", ""], "list of commands"),
     ("gates.heavy_process_mem_share", 0.0, "above 0 and at most 1"),
     ("gates.heavy_process_mem_share", 1.5, "above 0 and at most 1"),
     ("rules.swap_high_seconds", -30.0, "0 or more seconds"),
     ("rules.latency_factor", 0.5, "1 or more")],
)  # fmt: skip
def test_out_of_range_values_name_the_key(key: str, value: object, need: str) -> None:
    cfg = config.load(environ={})
    cfg.set(key, value, "test.toml")
    with pytest.raises(ConfigError) as exc:
        settings.check(cfg)
    message = str(exc.value)
    assert message.startswith(f"config key '{key}' (test.toml) must be ") and need in message
    assert "\n" not in message


def test_the_signals_extension_refuses_a_bad_config() -> None:
    from console.core.signals.extension import SignalsExtension

    cfg = config.load(environ={})
    cfg.set("signals.interval", 0.0)
    with pytest.raises(ConfigError, match="signals.interval"):
        SignalsExtension(cfg)


@pytest.mark.parametrize("command", [["gates"], ["predict", "x.gguf"], ["serve"]])
def test_commands_exit_2_with_one_line(command: list[str], home: Path) -> None:
    env = {"TWOLANE__GATES__HEAVY_PROCESS_PATTERNS": '["ollama pull", 3]'}
    result = run_twolane(*command, env=env, timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "twolane: config key 'gates.heavy_process_patterns' "
        "(env:TWOLANE__GATES__HEAVY_PROCESS_PATTERNS) must be a list of commands such as "
        "[\"ollama pull\"], got ['ollama pull', 3]\n"
    )


async def test_the_console_exits_2_with_the_message(home: Path) -> None:
    from console.tui.app import build_app
    from tests.helpers import until

    cfg = config.load()
    cfg.set("signals.interval", 0.0, "test.toml")
    app = build_app(home=home, config=cfg)
    async with app.run_test(size=(80, 24)):
        await until(lambda: app.return_code is not None, what="the console to exit")
    assert app.return_code == 2


def test_docs_list_every_key_with_its_default() -> None:
    """docs/signals.md's configuration table says each default the code has."""
    import re
    import tomllib

    doc = (Path(__file__).parents[2] / "docs" / "signals.md").read_text()
    rows = dict(re.findall(r"^\| `((?:signals|gates|rules)\.\w+)` \| `([^`]+)` \|", doc, re.M))
    assert set(rows) == set(settings.CHECKS)
    for key, text in rows.items():
        assert tomllib.loads(f"v = {text}")["v"] == config.DEFAULTS[key], key
