"""Pure parts of the gateway: upstream config, routing, context policy, affinity, priority."""

from __future__ import annotations

import pytest

from console.api.gateway import check_listen, is_loopback
from console.api.gateway.errors import GatewayError
from console.api.gateway.server import HIGH_PRIORITY, origin_matches, parse_priority, retry_after
from console.core import config
from console.core.affinity import Affinity
from console.core.config import ConfigError
from console.core.models import Job, JobSpec, Lane
from console.core.upstreams import ContextPolicy, parse_upstreams, requested_ctx, route


def test_default_config_is_ollama_on_loopback_in_the_local_lane() -> None:
    [up] = parse_upstreams(config.DEFAULTS["upstreams"])
    assert (up.name, up.kind, up.base_url, up.lane, up.models) == (
        "ollama", "ollama", "http://127.0.0.1:11434", Lane.LOCAL, ("*",))  # fmt: skip
    assert config.DEFAULTS["gateway.port"] == 11500 and config.DEFAULTS["gateway.host"] == "127.0.0.1"
    for key in config.DEFAULTS:
        if key.startswith("gateway.") or key == "upstreams":
            assert config.DESCRIPTIONS.get(key), key


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("x", "must be a table"),
        ({"kind": "ollama", "base_url": "http://a"}, "needs a 'name'"),
        ({"name": "a", "kind": "vllm", "base_url": "http://a"}, 'kind must be "ollama" or "openai"'),
        ({"name": "a", "base_url": "localhost:11434"}, "base_url must be an http(s) URL"),
        ({"name": "a", "base_url": "http://a", "lane": "fast"}, 'lane must be "local" or "remote"'),
        ({"name": "a", "base_url": "http://a", "models": []}, "models must be a non-empty list"),
        ({"name": "a", "base_url": "http://a", "models": [3]}, "models must be a non-empty list"),
        ({"name": "a", "base_url": "http://a", "api_key_env": ""}, "api_key_env must name"),
        ({"name": "a", "base_url": "http://a", "key": "sk-1"}, "unknown key(s) ['key']"),
    ],
)
def test_bad_upstream_entries_get_one_line_errors(entry: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_upstreams([entry])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_duplicate_names_and_non_list_are_refused() -> None:
    with pytest.raises(ConfigError, match="listed twice"):
        parse_upstreams([{"name": "a", "base_url": "http://a"}, {"name": "a", "base_url": "http://b"}])
    with pytest.raises(ConfigError, match=r"\[\[upstreams\]\]"):
        parse_upstreams({"name": "a"})


def test_config_file_upstreams_are_read(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text('[gateway]\nport = 12000\ncors_origins = ["chrome-extension://*"]\n\n'
                    '[[upstreams]]\nname = "cloud"\nkind = "openai"\nbase_url = "https://api.example.com/v1"\n'
                    'lane = "remote"\nmodels = ["gpt-*"]\napi_key_env = "OPENAI_API_KEY"\n')  # fmt: skip
    cfg = config.load(path, environ={})
    assert cfg.get("gateway.port") == 12000
    [up] = parse_upstreams(cfg.get("upstreams"))
    assert up.lane is Lane.REMOTE and up.openai_base() == "https://api.example.com/v1"
    assert up.root() == "https://api.example.com"


def test_routing_prefers_exact_names_then_the_first_glob() -> None:
    ups = parse_upstreams([
        {"name": "ollama", "base_url": "http://a", "models": ["*"]},
        {"name": "cloud", "kind": "openai", "base_url": "http://b", "lane": "remote",
         "models": ["gpt-*", "claude-3"]},
    ])  # fmt: skip
    assert route(ups, "claude-3").name == "cloud"
    assert route(ups, "gpt-4o").name == "ollama"  # "*" comes first and is a glob too
    ups = list(reversed(ups))
    assert route(ups, "gpt-4o").name == "cloud"
    assert route(ups, "llama3").name == "ollama"
    only = parse_upstreams([{"name": "x", "base_url": "http://a", "models": ["llama*"]}])
    assert route(only, "qwen") is None



def test_the_gateway_keeps_each_model_names_route_in_a_bounded_dict(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from console.api import gateway as gateway_mod
    from console.api.gateway import Gateway

    cfg = config.load()
    cfg.set("upstreams", [
        {"name": "cloud", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "lane": "remote", "models": ["gpt-*"]},
        {"name": "box", "kind": "ollama", "base_url": "http://127.0.0.1:9", "lane": "local", "models": ["llama*"]},
    ])  # fmt: skip
    gw = Gateway(cfg)
    assert gw.route("gpt-4o").name == "cloud" and gw.route("llama3").name == "box"  # type: ignore[union-attr]
    assert gw.route("mistral") is None and gw.route("mistral") is None  # still not served
    assert gw.route("gpt-4o") is gw.upstreams[0]
    monkeypatch.setattr(gateway_mod, "ROUTES_KEPT", 8)
    for i in range(20):
        assert gw.route(f"gpt-{i}") is gw.upstreams[0]
        assert len(gw._routes) <= 8

def test_requested_ctx_reads_options_and_body_extensions() -> None:
    assert requested_ctx({"options": {"num_ctx": 4096}}) == 4096
    assert requested_ctx({"num_ctx": 2048, "numCtx": 8192}) == 8192
    assert requested_ctx({"options": {"num_ctx": "big"}, "numCtx": True}) is None
    assert requested_ctx({"options": [1]}) is None
    assert requested_ctx({"model": "m", "messages": []}) is None
    assert requested_ctx({"model": "m", "options": {"temperature": 0}, "numCtx": 512}) == 512


def test_context_never_shrinks_and_is_capped() -> None:
    policy = ContextPolicy(max_ctx=8192)
    assert policy.context_for("m", None) is None
    assert policy.context_for("m", 2048) == 2048
    assert policy.context_for("m", 1024) == 2048
    assert policy.context_for("m", None) == 2048
    assert policy.context_for("m", 65536) == 8192
    assert policy.context_for("other", 512) == 512
    assert ContextPolicy(max_ctx=0).context_for("m", 10**6) == 10**6


def test_priority_from_body_or_header() -> None:
    assert parse_priority({}, None) == 0
    assert parse_priority({"priority": True}, None) == HIGH_PRIORITY
    assert parse_priority({"priority": 5}, "1") == 5
    assert parse_priority({}, "7") == 7
    assert parse_priority({}, "true") == HIGH_PRIORITY
    for body, header in [({"priority": "x"}, None), ({}, "soon"), ({"priority": 10**9}, None)]:
        with pytest.raises(GatewayError) as err:
            parse_priority(body, header)
        assert err.value.status == 400


def test_listen_guard_and_origins_and_retry_after() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    check_listen("0.0.0.0", "secret")
    with pytest.raises(ConfigError, match="set gateway.api_key"):
        check_listen("0.0.0.0", "")
    assert origin_matches("chrome-extension://abc", ["chrome-extension://*"])
    assert not origin_matches("https://evil.example", ["chrome-extension://*", "moz-extension://*"])
    assert retry_after(2.0, 10, 1) == 20 and retry_after(0.01, 1, 5) == 1 and retry_after(60, 100, 1) == 120


def _job(id: str, model: str | None, seq: int, priority: int = 0, kind: str = "chat") -> Job:
    return Job(id=id, name=id, lane=Lane.LOCAL, kind=kind, priority=priority, seq=seq,
               created_at=100.0, spec=JobSpec(extra={"model": model} if model else {}))  # fmt: skip


def _drain(aff: Affinity, queue: list[Job], now: float = 101.0) -> list[str]:
    order = []
    queue = sorted(queue, key=Job.sort_key)
    while queue:
        job = aff.pick(Lane.LOCAL, queue, now)
        queue.remove(job)
        job.started_at = now
        aff.started(job, queue)
        order.append(job.id)
    return order


def test_affinity_groups_the_loaded_model_and_counts_reloads_avoided() -> None:
    aff = Affinity(window=8, loaded="m1")
    jobs = [_job("a2", "m2", 1), _job("b1", "m1", 2), _job("c2", "m2", 3), _job("d1", "m1", 4)]
    assert _drain(aff, jobs) == ["b1", "d1", "a2", "c2"]
    assert aff.reloads_avoided == 2 and aff.loaded == "m2"


def test_affinity_is_bounded_by_count_and_time_and_never_beats_priority() -> None:
    aff = Affinity(window=1, loaded="m1")
    assert _drain(aff, [_job("a2", "m2", 1), _job("b1", "m1", 2), _job("c1", "m1", 3)]) == ["b1", "a2", "c1"]
    aff = Affinity(window=8, window_seconds=30, loaded="m1")
    assert _drain(aff, [_job("a2", "m2", 1), _job("b1", "m1", 2)], now=131.0) == ["a2", "b1"]
    aff = Affinity(window=8, loaded="m1")
    assert _drain(aff, [_job("a2", "m2", 1, priority=5), _job("b1", "m1", 2)]) == ["a2", "b1"]
    off = Affinity(window=0, loaded="m1")
    assert _drain(off, [_job("a2", "m2", 1), _job("b1", "m1", 2)]) == ["a2", "b1"]
    assert off.reloads_avoided == 0


def test_affinity_ignores_pulls_and_counts_each_start_once() -> None:
    aff = Affinity(window=8, loaded="m1")
    pull = _job("p", "m9", 1, kind="pull")
    assert aff.pick(Lane.LOCAL, [pull, _job("b1", "m1", 2)], 101.0).id == "p"
    job = _job("b1", "m1", 2)
    job.started_at = 101.0
    waiting = [_job("a2", "m2", 1)]
    assert aff.started(job, waiting) is True
    assert aff.started(job, waiting) is False
    assert aff.reloads_avoided == 1


def test_affinity_remembers_the_last_256_starts() -> None:
    aff = Affinity(window=8)
    starts = [_job(f"j{i}", "m1", i) for i in range(300)]
    for job in starts:
        assert aff.started(job, []) is False  # one model all along: nothing avoided
    assert len(aff._started) == len(aff._started_ids) == 256
    assert starts[-1].id in aff._started_ids and starts[43].id not in aff._started_ids
    assert starts[44].id in aff._started_ids  # the oldest kept


def test_a_succeeded_job_event_moves_its_own_lanes_average_run_time() -> None:
    from console.api.gateway import Gateway

    gw = Gateway(config.load())
    before = dict(gw._durations)
    gw._observe({"id": "a", "lane": "remote", "state": "succeeded", "started_at": 10.0, "finished_at": 16.0})
    assert gw._durations[Lane.REMOTE] == pytest.approx(0.8 * before[Lane.REMOTE] + 0.2 * 6.0)
    assert gw._durations[Lane.LOCAL] == before[Lane.LOCAL]
    assert all(type(lane) is Lane for lane in gw._durations)
    with pytest.raises(ValueError):
        gw._observe({"id": "b", "lane": "nowhere", "state": "succeeded", "started_at": 1.0, "finished_at": 2.0})


def test_upstream_headers_are_json_plus_the_key_read_at_each_call(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from console.core.runners.chat import upstream_headers

    plain, keyed = parse_upstreams([
        {"name": "box", "base_url": "http://127.0.0.1:9"},
        {"name": "cloud", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "TL_TEST_KEY"},
    ])  # fmt: skip
    monkeypatch.delenv("TL_TEST_KEY", raising=False)
    assert dict(upstream_headers(plain)) == {"Content-Type": "application/json"}
    assert dict(upstream_headers(keyed)) == {"Content-Type": "application/json"}
    monkeypatch.setenv("TL_TEST_KEY", "k1")
    assert dict(upstream_headers(keyed)) == {"Content-Type": "application/json", "Authorization": "Bearer k1"}
    monkeypatch.setenv("TL_TEST_KEY", "k2")
    assert upstream_headers(keyed)["authorization"] == "Bearer k2"
    with pytest.raises(TypeError):  # one copy serves every keyless call: nobody may change it
        upstream_headers(plain)["X-Extra"] = "1"  # type: ignore[index]
