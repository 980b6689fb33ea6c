"""Bootstrap intervals of success rates: coverage of known answers, pairing, and the degenerate cases."""

import numpy as np
import pytest

from sampo_verl.stats import Interval, bootstrap_mean


def test_constant_values_have_a_zero_width_interval():
    assert bootstrap_mean(np.ones(50)) == Interval(1.0, 1.0, 1.0)


def test_one_seed_matches_the_normal_approximation_of_a_rate():
    rng = np.random.default_rng(1)
    tasks = (rng.random(400) < 0.3).astype(float)
    interval = bootstrap_mean(tasks)
    p = tasks.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / tasks.size)
    assert interval.mean == pytest.approx(p)
    assert interval.low == pytest.approx(p - half, abs=0.01) and interval.high == pytest.approx(p + half, abs=0.01)


def test_the_interval_covers_the_true_rate_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    covered = [
        (i := bootstrap_mean(rng.random((3, 64)) < 0.6, samples=1000, seed=k)).low <= 0.6 <= i.high
        for k in range(200)
    ]
    assert 0.88 <= np.mean(covered) <= 0.99


def test_seed_noise_widens_the_interval():
    rng = np.random.default_rng(3)
    base = (rng.random(256) < 0.5).astype(float)
    same = np.stack([base] * 5)
    spread = np.stack([np.clip(base + shift, 0, 1) for shift in (-0.3, -0.1, 0.0, 0.1, 0.3)])
    narrow, wide = bootstrap_mean(same), bootstrap_mean(spread)
    assert wide.high - wide.low > 1.5 * (narrow.high - narrow.low)


def test_a_paired_difference_is_narrower_than_the_unpaired_intervals():
    rng = np.random.default_rng(4)
    hard = rng.random(256) < 0.5  # tasks both runs fail or solve alike
    before = hard.astype(float)
    after = np.where(rng.random(256) < 0.1, 1.0, before)  # the change solves ~10% more tasks
    paired = bootstrap_mean(after - before)
    a, b = bootstrap_mean(after), bootstrap_mean(before)
    assert paired.low > 0  # the change is certain
    assert (paired.high - paired.low) < 0.5 * min(a.high - a.low, b.high - b.low)
    assert a.low < b.high  # ... which the two unpaired intervals, overlapping, do not show


def test_text_and_bad_shapes():
    assert Interval(0.1, -0.02, 0.25).text(signed=True) == "+0.100 [-0.020, +0.250]"
    assert Interval(0.5, 0.4, 0.6).text() == "0.500 [0.400, 0.600]"
    with pytest.raises(ValueError, match="shape"):
        bootstrap_mean(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="shape"):
        bootstrap_mean(np.zeros(0))
