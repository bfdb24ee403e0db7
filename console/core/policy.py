"""The lane rules as one pure function.

Given what is queued and running in each lane and whose turn it is, ``decide`` says
which lane may start one job now (or none) and what the turn becomes. The scheduler
calls it repeatedly, applying each start, until it answers ``start=None``.

Rules (see docs/architecture.md):

- the local lane runs at most one job; the remote lane at most ``concurrency``;
- without cross-mix, a lane with running jobs owns the machine: the other starts nothing;
- when both lanes have eligible work, turns alternate. A local turn is one job, a remote
  turn admits at most ``concurrency`` new jobs; once the turn is used up and the other lane
  waits, the active lane lets its running jobs finish and then hands over;
- a paused or held lane starts nothing and never keeps the other lane waiting.
"""

from __future__ import annotations

from typing import NamedTuple

from console.core.models import Lane

LANES = (Lane.LOCAL, Lane.REMOTE)

# Immutable values as named tuples rather than frozen dataclasses: the scheduler builds a
# state and gets a decision at least twice per job, and a frozen dataclass's __init__
# (object.__setattr__ per field) cost several times a tuple's.


class LaneView(NamedTuple):
    queued: int = 0
    running: int = 0
    paused: bool = False
    held: bool = False  # a pre-flight gate failed for the head job

    @property
    def wants(self) -> bool:
        """Has work that could start if the lane had the machine."""
        return self.queued > 0 and not self.paused and not self.held


class Turn(NamedTuple):
    lane: Lane | None = None
    started: int = 0  # jobs started during this turn


class PolicyState(NamedTuple):
    local: LaneView = LaneView()
    remote: LaneView = LaneView()
    concurrency: int = 5
    cross_mix: bool = False
    turn: Turn = Turn()

    def view(self, lane: Lane) -> LaneView:
        return self.local if lane is Lane.LOCAL else self.remote

    def cap(self, lane: Lane) -> int:
        return 1 if lane is Lane.LOCAL else max(1, self.concurrency)


class Decision(NamedTuple):
    start: Lane | None
    turn: Turn


def turn_quota(state: PolicyState, lane: Lane) -> int:
    """How many jobs a lane may start in one turn while the other lane waits."""
    return state.cap(lane)


_IDLE = Turn()


def decide(state: PolicyState) -> Decision:
    """Which lane may start one job now, and the turn that follows."""
    if state.cross_mix:
        return _decide_mixed(state)
    # Written out per lane (no views looked up by lane, no lists): the scheduler asks at
    # least twice per job. tests/core/test_policy.py checks it against the plain version.
    local, remote = state.local, state.remote
    turn = state.turn
    lane, started = turn
    if local.running:
        if remote.running:
            # Only possible right after cross-mix was switched off: wait until one drains.
            return Decision(None, turn)
        if lane is not Lane.LOCAL:  # the lane that is running owns the turn
            lane, started = Lane.LOCAL, local.running
    elif remote.running and lane is not Lane.REMOTE:
        lane, started = Lane.REMOTE, remote.running

    local_wants = local.queued > 0 and not local.paused and not local.held
    remote_wants = remote.queued > 0 and not remote.paused and not remote.held
    if lane is None:
        if local_wants:
            lane = Lane.LOCAL
        elif remote_wants:
            lane = Lane.REMOTE
        else:
            return Decision(None, _IDLE)
        started = 0

    if lane is Lane.LOCAL:
        mine, mine_wants, theirs_wants, cap = local, local_wants, remote_wants, 1
    else:
        mine, mine_wants, theirs_wants = remote, remote_wants, local_wants
        cap = max(1, state.concurrency)
    if not mine_wants or (theirs_wants and started >= cap):  # the turn is over
        if mine.running > 0:
            return Decision(None, Turn(lane, started))  # drain before handing over
        if not theirs_wants:
            return Decision(None, _IDLE)  # nothing anywhere may start: idle
        if lane is Lane.LOCAL:
            lane, mine, cap = Lane.REMOTE, remote, max(1, state.concurrency)
        else:
            lane, mine, cap = Lane.LOCAL, local, 1
        started = 0

    if mine.running < cap:
        return Decision(lane, Turn(lane, started + 1))
    return Decision(None, Turn(lane, started))


def _decide_mixed(state: PolicyState) -> Decision:
    # Cross-mix allowed: each lane is bounded by its own cap only. Start the lane whose
    # turn it is not, so that neither lane hogs the dispatch loop.
    order = LANES if state.turn.lane is not Lane.LOCAL else (Lane.REMOTE, Lane.LOCAL)
    for lane in order:
        view = state.view(lane)
        if view.wants and view.running < state.cap(lane):
            return Decision(lane, Turn(lane, 1))
    return Decision(None, state.turn)
