"""The event bus: kinds and a ``where`` filter decide what reaches a subscriber."""

from __future__ import annotations

from console.core import events


def test_where_keeps_unwanted_events_out_of_the_queue() -> None:
    bus = events.EventBus()
    every = bus.subscribe()
    jobs = bus.subscribe({events.JOB})
    running = bus.subscribe({events.JOB}, where=lambda e: e.data.get("state") == "running")
    bus.publish(events.JOB, {"id": "a", "state": "queued"})
    bus.publish(events.JOB, {"id": "a", "state": "running"})
    bus.publish(events.LANES, {"state": "running"})
    assert every.queue.qsize() == 3
    assert jobs.queue.qsize() == 2
    assert running.queue.qsize() == 1
    assert running.queue.get_nowait().data == {"id": "a", "state": "running"}


def test_wanted_says_whether_anyone_takes_a_kind() -> None:
    bus = events.EventBus()
    assert not bus.wanted(events.LANES)
    with bus.subscribe({events.JOB}):
        assert bus.wanted(events.JOB) and not bus.wanted(events.LANES)
        with bus.subscribe():
            assert bus.wanted(events.LANES)
    assert not bus.wanted(events.JOB)


def test_a_listener_is_called_as_the_event_is_published() -> None:
    bus = events.EventBus()
    seen: list[str] = []
    listener = bus.listen({events.JOB}, lambda e: seen.append(e.data["state"]),
                          where=lambda e: e.data.get("state") != "queued")  # fmt: skip
    assert bus.wanted(events.JOB) and not bus.wanted(events.LANES)
    bus.publish(events.JOB, {"id": "a", "state": "queued"})
    bus.publish(events.JOB, {"id": "a", "state": "running"})
    assert seen == ["running"]  # already, with no task having run
    bus.publish(events.LANES, {"state": "done"})
    listener.close()
    bus.publish(events.JOB, {"id": "a", "state": "succeeded"})
    assert seen == ["running"] and not bus.wanted(events.JOB)


def test_a_failing_listener_is_logged_and_the_others_still_hear(caplog) -> None:  # type: ignore[no-untyped-def]
    bus = events.EventBus()
    seen: list[dict[str, str]] = []

    def broken(event: events.Event) -> None:
        raise RuntimeError("listener bug")

    with bus.listen(None, broken), bus.listen(None, lambda e: seen.append(e.data)):
        sub = bus.subscribe()
        bus.publish(events.JOB, {"id": "a"})  # does not raise
    assert seen == [{"id": "a"}] and sub.queue.qsize() == 1
    assert "listener bug" in caplog.text
