"""The CUSUM detector on synthetic hourly series with known changepoints."""
from __future__ import annotations

import datetime as dt
import random

from analysis.detector.cusum import BLOCKED, DOWN, OK, UP, Params, State, run, step

T0 = dt.datetime(2024, 3, 1)
P = Params()


def hours(shares: list[float | None], n: int = 20, start: dt.datetime = T0,
          rnd: random.Random | None = None) -> list[tuple[dt.datetime, int, int]]:
    """One (hour, n, blocked) per share; None = no measurement that hour.
    With ``rnd`` each measurement is blocked with probability ``share``."""
    out = []
    for i, sh in enumerate(shares):
        if sh is None:
            continue
        b = sum(rnd.random() < sh for _ in range(n)) if rnd else round(sh * n)
        out.append((start + dt.timedelta(hours=i), n, b))
    return out


def test_step_up_is_found_at_its_start():
    s = State()
    changes = run(s, hours([0.05] * 48 + [0.9] * 48), P)
    assert len(changes) == 1
    c = changes[0]
    assert c.direction == UP
    assert c.ts == T0 + dt.timedelta(hours=48)
    # confirmed within a few hours, not at the end of the series
    assert c.last_ts <= T0 + dt.timedelta(hours=51)
    assert c.status_change == BLOCKED and s.status == BLOCKED
    assert abs(c.new_mean - 0.9) < 0.01 and abs(c.old_mean - 0.05) < 0.01


def test_step_down_unblocks():
    s = State()
    changes = run(s, hours([0.9] * 48 + [0.05] * 48), P)
    # the series starts blocked: no event for a start nobody saw
    assert [(c.direction, c.ts, c.status_change) for c in changes] == [
        (DOWN, T0 + dt.timedelta(hours=48), OK)]
    assert s.status == OK


def test_up_then_down():
    s = State()
    changes = run(s, hours([0.05] * 48 + [0.95] * 48 + [0.05] * 48), P)
    assert [(c.direction, c.ts, c.status_change) for c in changes] == [
        (UP, T0 + dt.timedelta(hours=48), BLOCKED),
        (DOWN, T0 + dt.timedelta(hours=96), OK)]


def test_noise_only_finds_nothing():
    for seed in range(30):
        rnd = random.Random(seed)
        for level in (0.02, 0.1, 0.3, 0.5):
            s = State()
            assert run(s, hours([level] * 24 * 14, n=10, rnd=rnd), P) == [], (seed, level)


def test_short_spike_is_not_a_change():
    s = State()
    changes = run(s, hours([0.05] * 48 + [0.9, 0.9] + [0.05] * 48), P)
    assert changes == []
    assert s.status == OK


def test_noisy_step_is_found():
    rnd = random.Random(7)
    s = State()
    changes = run(s, hours([0.05] * 72 + [0.8] * 72, n=15, rnd=rnd), P)
    assert [c.direction for c in changes] == [UP]
    assert abs(changes[0].ts - (T0 + dt.timedelta(hours=72))) <= dt.timedelta(hours=2)


def test_missing_data_gap_alone_is_not_a_change():
    shares = [0.05] * 48 + [None] * 24 * 4 + [0.05] * 48
    assert run(State(), hours(shares), P) == []


def test_gap_resets_partial_evidence():
    # Two spikes of 2 h each would add up to a change if they were adjacent;
    # days of silence between them mean they are unrelated.
    shares = [0.05] * 48 + [0.9, 0.9] + [None] * 72 + [0.9, 0.9] + [0.05] * 24
    assert run(State(), hours(shares), P) == []
    adjacent = [0.05] * 48 + [0.9, 0.9, 0.05, 0.9, 0.9] + [0.05] * 24
    assert [c.direction for c in run(State(), hours(adjacent), P)][:1] == [UP]


def test_step_across_a_gap_is_found_after_it():
    shares = [0.05] * 48 + [None] * 72 + [0.9] * 24
    changes = run(State(), hours(shares), P)
    assert [(c.direction, c.ts) for c in changes] == [(UP, T0 + dt.timedelta(hours=120))]


def test_single_measurements_are_pooled_never_decided_alone():
    s = State()
    # one blocked measurement per hour: below min_samples, pooled 5 at a time
    one_per_hour = [(T0 + dt.timedelta(hours=i), 1, 1 if i == 3 else 0) for i in range(4)]
    assert run(s, one_per_hour, P) == []
    assert s.mean is None and s.pend_n == 4
    # isolated blocked samples a day apart never pool (gap reset)
    s = State()
    sparse = [(T0 + dt.timedelta(hours=30 * i), 1, 1) for i in range(30)]
    assert run(s, sparse, P) == [] and s.mean is None


def test_bad_counts_are_clamped():
    s = State()
    assert step(s, T0, 0, 5, P) is None and s.last_ts is None
    assert step(s, T0, -3, 1, P) is None
    assert step(s, T0, 10, 50, P) is None  # more blocked than measured
    assert s.mean == 1.0


def test_state_copy_resumes_identically():
    series = hours([0.05] * 40 + [0.9] * 40 + [0.05] * 40)
    whole = run(State(), series, P)
    s = State()
    first = run(s, series[:50], P)
    resumed = run(s.copy(), series[50:], P)
    assert first + resumed == whole
