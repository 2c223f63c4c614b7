"""Analysis functions on synthetic matrices with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from attention_explorer.services.analyses import measures as analysis

N = 6
IDENTITY = np.eye(N)
PREVIOUS = np.eye(N, k=-1)
PREVIOUS[0, 0] = 1.0  # the first token has no previous one: it attends to itself
UNIFORM = np.full((N, N), 1.0 / N)


def test_head_average():
    stack = np.stack([IDENTITY, UNIFORM])
    np.testing.assert_allclose(analysis.head_average(stack), (IDENTITY + UNIFORM) / 2)
    layers = np.stack([stack, stack[::-1]])
    assert analysis.head_average(layers).shape == (2, N, N)
    with pytest.raises(ValueError):
        analysis.head_average(IDENTITY)


def test_local_ratio():
    assert analysis.local_ratio(IDENTITY, 0) == pytest.approx(1.0)
    assert analysis.local_ratio(PREVIOUS, 0) == pytest.approx(1 / N)  # only row 0 attends to itself
    assert analysis.local_ratio(PREVIOUS, 1) == pytest.approx(1.0)
    # uniform: row q has min(q, w) + min(N-1-q, w) + 1 keys within the window, out of N
    expected = np.mean([(min(q, 2) + min(N - 1 - q, 2) + 1) / N for q in range(N)])
    assert analysis.local_ratio(UNIFORM, 2) == pytest.approx(expected)
    assert analysis.local_ratio(np.stack([IDENTITY, UNIFORM]), 0).tolist() == pytest.approx([1.0, 1 / N])


def test_mean_distance():
    assert analysis.mean_distance(IDENTITY) == pytest.approx(0.0)
    assert analysis.mean_distance(PREVIOUS) == pytest.approx((N - 1) / N)


def test_entropy():
    assert analysis.entropy(IDENTITY) == pytest.approx(0.0)
    assert analysis.entropy(PREVIOUS, normalise=True) == pytest.approx(0.0)
    assert analysis.entropy(UNIFORM) == pytest.approx(np.log(N))
    assert analysis.entropy(UNIFORM, normalise=True) == pytest.approx(1.0)
    causal_uniform = np.tril(np.ones((N, N))) / np.arange(1, N + 1)[:, None]
    # every row spreads evenly over what it can see: 1 for each row but the first (which sees one key)
    assert analysis.entropy(causal_uniform, normalise=True, causal=True) == pytest.approx((N - 1) / N)


def test_top_attended():
    att = np.zeros((2, 2, N, N))
    att[0, :, 3, 1] = 1.0  # layer 0: token 3 attends to token 1 in both heads
    att[1, 0, 3, 4] = 1.0  # layer 1: head 0 -> 4, head 1 -> 2 (0.75) and 5 (0.25)
    att[1, 1, 3, 2] = 0.75
    att[1, 1, 3, 5] = 0.25
    top = analysis.top_attended(att, 3, k=3)
    assert top[0][0] == (1, 1.0)
    assert [i for i, _ in top[1]] == [4, 2, 5]
    assert [w for _, w in top[1]] == pytest.approx([0.5, 0.375, 0.125])
    with pytest.raises(IndexError):
        analysis.top_attended(att, N, k=1)


def test_normalisation_error():
    assert analysis.normalisation_error(UNIFORM) < 1e-12
    broken = UNIFORM.copy()
    broken[2, 2] += 0.25
    assert analysis.normalisation_error(broken) == pytest.approx(0.25)
