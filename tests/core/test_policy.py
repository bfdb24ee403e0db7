"""The lane rules, property-tested: random workloads, random finishing order, random
pauses, holds and concurrency changes; the invariants must hold after every step."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from console.core.models import Lane
from console.core.policy import Decision, LaneView, PolicyState, Turn, decide

L, R = Lane.LOCAL, Lane.REMOTE


@dataclass
class Sim:
    """A model of the scheduler around the pure policy."""

    concurrency: int = 5
    cross_mix: bool = False
    queued: dict[Lane, int] = field(default_factory=lambda: {L: 0, R: 0})
    running: dict[Lane, int] = field(default_factory=lambda: {L: 0, R: 0})
    paused: dict[Lane, bool] = field(default_factory=lambda: {L: False, R: False})
    held: dict[Lane, bool] = field(default_factory=lambda: {L: False, R: False})
    turn: Turn = Turn()
    starts: list[Lane] = field(default_factory=list)

    def state(self) -> PolicyState:
        def view(lane: Lane) -> LaneView:
            return LaneView(self.queued[lane], self.running[lane], self.paused[lane], self.held[lane])

        return PolicyState(view(L), view(R), self.concurrency, self.cross_mix, self.turn)

    def dispatch(self) -> None:
        for _ in range(1000):
            state = self.state()
            d = decide(state)
            self.turn = d.turn
            if d.start is None:
                self.check_idle_is_justified(state)
                return
            lane = d.start
            # A start is only ever legal:
            assert self.queued[lane] > 0, "started from an empty lane"
            assert not self.paused[lane], "started from a paused lane"
            assert not self.held[lane], "started from a held lane"
            assert self.running[lane] < state.cap(lane), "started past the lane's cap"
            if not self.cross_mix:
                assert self.running[lane.other] == 0, "cross-mixed lanes"
            self.queued[lane] -= 1
            self.running[lane] += 1
            self.starts.append(lane)
        raise AssertionError("dispatch did not settle")

    def check_idle_is_justified(self, state: PolicyState) -> None:
        # With nothing running anywhere, a lane with eligible work must get to start.
        if self.running[L] == 0 and self.running[R] == 0:
            assert not (state.local.wants or state.remote.wants), f"idle with work: {state}"
        if self.cross_mix:
            for lane in (L, R):
                v = state.view(lane)
                assert not (v.wants and v.running < state.cap(lane)), "mixed mode left a slot idle"

    def invariants(self) -> None:
        assert self.running[L] <= 1
        if not self.cross_mix:
            assert not (self.running[L] and self.running[R])


events = st.one_of(
    st.tuples(st.just("add"), st.sampled_from([L, R]), st.integers(1, 4)),
    st.tuples(st.just("finish"), st.sampled_from([L, R]), st.just(1)),
    st.tuples(st.just("pause"), st.sampled_from([L, R]), st.booleans()),
    st.tuples(st.just("hold"), st.sampled_from([L, R]), st.booleans()),
    st.tuples(st.just("concurrency"), st.just(R), st.integers(1, 8)),
)


@settings(max_examples=400, deadline=None)
@given(
    concurrency=st.integers(1, 8),
    cross_mix=st.booleans(),
    script=st.lists(events, max_size=80),
)
def test_invariants_hold_under_any_workload(concurrency, cross_mix, script):
    sim = Sim(concurrency=concurrency, cross_mix=cross_mix)
    for kind, lane, arg in script:
        if kind == "add":
            sim.queued[lane] += arg
        elif kind == "finish":
            if sim.running[lane]:
                sim.running[lane] -= 1
        elif kind == "pause":
            sim.paused[lane] = arg
        elif kind == "hold":
            sim.held[lane] = arg
        elif kind == "concurrency":
            sim.concurrency = arg
        sim.dispatch()
        sim.invariants()


@settings(max_examples=300, deadline=None)
@given(
    concurrency=st.integers(1, 8),
    finish_order=st.lists(st.sampled_from([L, R]), min_size=60, max_size=200),
)
def test_backlogged_lanes_alternate_and_never_starve(concurrency, finish_order):
    """Both lanes permanently backlogged: turns alternate, each turn within its quota."""
    sim = Sim(concurrency=concurrency)
    sim.queued = {L: 10_000, R: 10_000}
    sim.dispatch()
    for lane in finish_order:
        busy = lane if sim.running[lane] else lane.other
        sim.running[busy] -= 1
        sim.dispatch()
        sim.invariants()
    runs: list[tuple[Lane, int]] = []
    for lane in sim.starts:
        if runs and runs[-1][0] is lane:
            runs[-1] = (lane, runs[-1][1] + 1)
        else:
            runs.append((lane, 1))
    for lane, count in runs:
        assert count <= (1 if lane is L else concurrency), f"{lane} ran {count} in one turn"
    # Alternation: every finished turn is followed by the other lane's turn.
    assert all(a[0] is not b[0] for a, b in zip(runs, runs[1:], strict=False))
    # Each lane starts at least once in every two turns once both are waiting.
    assert {L, R} <= set(sim.starts)


def test_local_lane_runs_one_at_a_time():
    state = PolicyState(local=LaneView(queued=3, running=1))
    assert decide(state).start is None


def test_remote_lane_fills_to_concurrency_then_stops():
    sim = Sim(concurrency=3)
    sim.queued[R] = 10
    sim.dispatch()
    assert sim.running[R] == 3 and sim.queued[R] == 7


def test_remote_turn_ends_when_local_waits_and_drains_before_handover():
    sim = Sim(concurrency=2)
    sim.queued[R] = 10
    sim.dispatch()  # remote turn: 2 started
    sim.queued[L] = 1
    sim.dispatch()
    assert sim.running == {L: 0, R: 2}
    sim.running[R] -= 1
    sim.dispatch()  # turn used up and local waits: no new remote start
    assert sim.running == {L: 0, R: 1}
    sim.running[R] -= 1
    sim.dispatch()  # drained: local gets its turn
    assert sim.running == {L: 1, R: 0}


def test_paused_lane_lets_the_other_lane_run():
    sim = Sim()
    sim.queued = {L: 2, R: 2}
    sim.paused[L] = True
    sim.dispatch()
    assert sim.running == {L: 0, R: 2}


def test_held_lane_does_not_keep_the_other_waiting():
    sim = Sim(concurrency=1)
    sim.queued = {L: 1, R: 3}
    sim.held[L] = True
    sim.dispatch()
    sim.running[R] -= 1
    sim.dispatch()  # local still held: remote goes on beyond its quota
    assert sim.running == {L: 0, R: 1}
    sim.held[L] = False
    sim.running[R] -= 1
    sim.dispatch()
    assert sim.running == {L: 1, R: 0}


def test_cross_mix_allowed_runs_both_lanes():
    sim = Sim(concurrency=2, cross_mix=True)
    sim.queued = {L: 2, R: 5}
    sim.dispatch()
    assert sim.running == {L: 1, R: 2}


def test_both_lanes_running_after_cross_mix_switched_off_starts_nothing():
    state = PolicyState(local=LaneView(queued=1, running=1), remote=LaneView(queued=1, running=1))
    assert decide(state).start is None
    # Once local drains, the busy remote lane owns the turn, its running job counted.
    d = decide(state._replace(local=LaneView(queued=1, running=0)))
    assert d.start is Lane.REMOTE and d.turn == Turn(Lane.REMOTE, 2)


def reference_decide(state: PolicyState) -> Decision:
    """decide() as first written, lane by lane through the views: the optimised one must
    answer exactly as this does."""
    from console.core.policy import LANES, _decide_mixed, turn_quota

    if state.cross_mix:
        return _decide_mixed(state)
    turn = state.turn
    lane, started = turn.lane, turn.started
    busy = [candidate for candidate in LANES if state.view(candidate).running > 0]
    if len(busy) == 2:
        return Decision(None, turn)
    if busy and lane is not busy[0]:
        lane, started = busy[0], state.view(busy[0]).running
    if lane is None:
        lane = next((c for c in LANES if state.view(c).wants), None)
        if lane is None:
            return Decision(None, Turn())
        started = 0
    mine, theirs = state.view(lane), state.view(lane.other)
    turn_over = not mine.wants or (theirs.wants and started >= turn_quota(state, lane))
    if turn_over:
        if mine.running > 0:
            return Decision(None, Turn(lane, started))
        if not theirs.wants:
            return Decision(None, Turn())
        lane, started, mine = lane.other, 0, theirs
    if mine.running < state.cap(lane):
        return Decision(lane, Turn(lane, started + 1))
    return Decision(None, Turn(lane, started))


views = st.builds(LaneView, st.integers(0, 3), st.integers(0, 6), st.booleans(), st.booleans())


@settings(max_examples=3000, deadline=None)
@given(
    local=views,
    remote=views,
    concurrency=st.integers(0, 7),
    cross_mix=st.booleans(),
    turn=st.builds(Turn, st.sampled_from([None, L, R]), st.integers(0, 8)),
)
def test_decide_answers_as_the_plain_version_does(local, remote, concurrency, cross_mix, turn):
    state = PolicyState(local, remote, concurrency, cross_mix, turn)
    assert decide(state) == reference_decide(state)
