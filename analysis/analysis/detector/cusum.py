"""Two-sided CUSUM over the hourly blocking share of one series
(country, network, target). Pure logic: no database, no clock.

An observation is one hour's share of blocked measurements, ``blocked / n``.
Hours with fewer than ``min_samples`` measurements are pooled with the
following hours until the pool is large enough, so a network sending one
measurement an hour is still watched but never decides on one sample.

After a change the next ``relearn`` observations only refine the new
level. The reference level (``mean``) is the average share of the current regime,
updated only while neither accumulator is running, so the observations of a
change in progress do not drag the reference towards the new level and hide
it. When an accumulator crosses ``h`` the change is confirmed: its start is
the hour the accumulator left zero, and the new reference is the mean of the
observations since then.

A series is ``blocked`` after an upward change whose new level is at least
``blocked_share``, and ``ok`` again after a downward change to at most
``ok_share`` (the gap between the two keeps a level hovering around one
threshold from flapping).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

OK = "ok"
BLOCKED = "blocked"

UP = 1
DOWN = -1


@dataclass(frozen=True)
class Params:
    k: float = 0.15            # drift allowance per observation (share units)
    h: float = 2.0             # decision threshold (share units)
    min_samples: int = 5       # measurements pooled into one observation
    max_gap_hours: int = 24    # longer silences reset the accumulators
    blocked_share: float = 0.5
    ok_share: float = 0.3
    # The reference is an average over at most this many observations, so an
    # old regime forgets slowly rather than never.
    mean_window: int = 168
    # Observations that only build the first reference: one noisy hour is
    # a poor baseline and would read as a change on the next ones.
    warmup: int = 24
    # Observations after a change that only refine the new level: the first
    # estimate comes from a few hours, partly from before the change, and
    # would otherwise be "corrected" by a second, spurious changepoint.
    relearn: int = 6


@dataclass
class State:
    """Everything the detector remembers about one series between runs."""
    mean: float | None = None
    mean_n: int = 0
    s_pos: float = 0.0
    s_neg: float = 0.0
    pos_start: dt.datetime | None = None
    pos_sum: float = 0.0
    pos_cnt: int = 0
    neg_start: dt.datetime | None = None
    neg_sum: float = 0.0
    neg_cnt: int = 0
    status: str = OK
    status_known: bool = False             # warm-up done
    relearn_left: int = 0                  # observations left to refine the level
    last_ts: dt.datetime | None = None     # last hour that had measurements
    pend_n: int = 0                        # pooled hours not yet an observation
    pend_blocked: int = 0
    pend_start: dt.datetime | None = None

    def copy(self) -> "State":
        return replace(self)


@dataclass(frozen=True)
class Change:
    """A confirmed change of level. ``status_change`` is the new status when
    the change moved the series across a blocking threshold, else ''."""
    ts: dt.datetime          # estimated start of the change
    last_ts: dt.datetime     # hour it was confirmed
    direction: int           # UP or DOWN
    s_pos: float
    s_neg: float
    h: float
    old_mean: float
    new_mean: float
    count: int               # measurements in the confirming observation
    status_change: str = ""
    status: str = OK         # the series' status after the change


def _reset_acc(s: State) -> None:
    s.s_pos = s.s_neg = 0.0
    s.pos_start = s.neg_start = None
    s.pos_sum = s.neg_sum = 0.0
    s.pos_cnt = s.neg_cnt = 0


def step(s: State, ts: dt.datetime, n: int, blocked: int, p: Params) -> Change | None:
    """Feed one hour (``n`` usable measurements, ``blocked`` of them blocked)
    into ``s`` (updated in place); returns the change it confirms, if any.
    Hours must come in increasing order; an hour with n <= 0 is ignored."""
    if n <= 0:
        return None
    blocked = max(0, min(int(blocked), int(n)))
    if s.last_ts is not None and ts - s.last_ts > dt.timedelta(hours=p.max_gap_hours):
        # After a long silence the old evidence says nothing about now.
        _reset_acc(s)
        s.pend_n = s.pend_blocked = 0
        s.pend_start = None
    s.last_ts = ts
    if s.pend_start is None:
        s.pend_start = ts
    s.pend_n += n
    s.pend_blocked += blocked
    if s.pend_n < p.min_samples:
        return None
    x = s.pend_blocked / s.pend_n
    count, start = s.pend_n, s.pend_start
    s.pend_n = s.pend_blocked = 0
    s.pend_start = None
    return _observe(s, start, ts, x, count, p)


def _observe(s: State, start: dt.datetime, ts: dt.datetime, x: float, count: int,
             p: Params) -> Change | None:
    if not s.status_known:
        n = 0 if s.mean is None else s.mean_n
        s.mean = x if s.mean is None else (s.mean * n + x) / (n + 1)
        s.mean_n = n + 1
        if s.mean_n >= p.warmup:
            # A series first seen blocked starts blocked: no event for a
            # start nobody saw.
            s.status = BLOCKED if s.mean >= p.blocked_share else OK
            s.status_known = True
        return None
    if s.relearn_left > 0:
        s.relearn_left -= 1
        s.mean = (s.mean * s.mean_n + x) / (s.mean_n + 1)
        s.mean_n += 1
        return None
    s.s_pos = max(0.0, s.s_pos + (x - s.mean) - p.k)
    s.s_neg = max(0.0, s.s_neg + (s.mean - x) - p.k)
    if s.s_pos > 0:
        if s.pos_start is None:
            s.pos_start, s.pos_sum, s.pos_cnt = start, 0.0, 0
        s.pos_sum += x
        s.pos_cnt += 1
    else:
        s.pos_start, s.pos_sum, s.pos_cnt = None, 0.0, 0
    if s.s_neg > 0:
        if s.neg_start is None:
            s.neg_start, s.neg_sum, s.neg_cnt = start, 0.0, 0
        s.neg_sum += x
        s.neg_cnt += 1
    else:
        s.neg_start, s.neg_sum, s.neg_cnt = None, 0.0, 0

    if s.s_pos > p.h or s.s_neg > p.h:
        up = s.s_pos > p.h
        direction = UP if up else DOWN
        begin = s.pos_start if up else s.neg_start
        new_mean = (s.pos_sum / s.pos_cnt) if up else (s.neg_sum / s.neg_cnt)
        cnt = s.pos_cnt if up else s.neg_cnt
        old_mean = s.mean
        status_change = ""
        if up and s.status == OK and new_mean >= p.blocked_share:
            status_change = BLOCKED
        elif not up and s.status == BLOCKED and new_mean <= p.ok_share:
            status_change = OK
        ch = Change(ts=begin or start, last_ts=ts, direction=direction, s_pos=s.s_pos,
                    s_neg=s.s_neg, h=p.h, old_mean=old_mean, new_mean=new_mean,
                    count=count, status_change=status_change,
                    status=status_change or s.status)
        if status_change:
            s.status = status_change
        s.mean, s.mean_n = new_mean, cnt
        s.relearn_left = p.relearn
        _reset_acc(s)
        return ch
    if s.s_pos == 0 and s.s_neg == 0:
        n = min(s.mean_n, p.mean_window - 1)
        s.mean = (s.mean * n + x) / (n + 1)
        s.mean_n = n + 1
    return None


def run(s: State, hours: list[tuple[dt.datetime, int, int]], p: Params) -> list[Change]:
    """``step`` over (hour, n, blocked) in order; the changes found."""
    out = []
    for ts, n, blocked in hours:
        ch = step(s, ts, n, blocked, p)
        if ch is not None:
            out.append(ch)
    return out
