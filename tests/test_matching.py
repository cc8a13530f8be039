"""1:1 nearest-neighbour caliper matching: hand-checkable cases, invariants, input errors."""

import numpy as np
import pandas as pd
import pytest

from bayes_haic.errors import InputError
from bayes_haic.matching import match_nearest


def pairs_of(result):
    return list(zip(result.pairs["treated_id"], result.pairs["control_id"]))


def random_cohort(seed, n=300, shift=0.8):
    rng = np.random.default_rng(seed)
    t = rng.binomial(1, 0.4, n)
    d = rng.normal(shift * t, 1.0)
    ids = np.array([f"P{i:03d}" for i in range(n)])
    return d, t, ids


def test_greedy_order_decides_who_gets_the_close_control():
    # treated A (1.0) and B (0.8) both prefer control c1 (0.9); whoever chooses first gets it
    d = [1.0, 0.8, 0.9, 0.0]
    t = [1, 1, 0, 0]
    ids = ["A", "B", "c1", "c2"]
    largest = match_nearest(d, t, ids, caliper=None, order="largest")
    assert pairs_of(largest) == [("A", "c1"), ("B", "c2")]
    smallest = match_nearest(d, t, ids, caliper=None, order="smallest")
    assert pairs_of(smallest) == [("B", "c1"), ("A", "c2")]
    data = match_nearest(d, t, ids, caliper=None, order="data")
    assert pairs_of(data) == [("A", "c1"), ("B", "c2")]
    assert largest.pairs["distance"].tolist() == pytest.approx([0.1, 0.8])


def test_equally_near_controls_left_and_right_the_lower_distance_is_taken():
    d = [0.5, 0.75, 0.25]  # exact in binary: |0.5 - 0.75| == |0.5 - 0.25|
    res = match_nearest(d, [1, 0, 0], ["T", "hi", "lo"], caliper=None)
    assert pairs_of(res) == [("T", "lo")]


def test_treated_without_control_inside_the_caliper_stays_unmatched():
    # SD of d is about 2.3, caliper 0.2 SD = 0.46: T2 (5.0) has no control within reach
    d = [0.0, 5.0, 0.1, 0.3]
    res = match_nearest(d, [1, 1, 0, 0], ["T1", "T2", "C1", "C2"], caliper=0.2)
    assert res.caliper_distance == pytest.approx(0.2 * np.std(d, ddof=1))
    assert pairs_of(res) == [("T1", "C1")]
    assert list(res.unmatched_treated_ids) == ["T2"]
    assert res.n_unmatched_treated == 1
    assert res.matched.tolist() == [True, False, True, False]


def test_fewer_controls_than_treated():
    res = match_nearest([1.0, 2.0, 3.0, 2.1], [1, 1, 1, 0], ["a", "b", "c", "x"], caliper=None)
    assert pairs_of(res) == [("c", "x")]  # largest first: c (3.0) takes the only control
    assert sorted(res.unmatched_treated_ids) == ["a", "b"]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("order", ["largest", "smallest", "data"])
def test_caliper_respected_controls_used_once_and_deterministic(seed, order):
    d, t, ids = random_cohort(seed)
    res = match_nearest(d, t, ids, caliper=0.2, order=order)
    cal = 0.2 * np.std(d, ddof=1)
    assert res.caliper_distance == pytest.approx(cal, rel=1e-15)
    assert (res.pairs["distance"] <= cal).all()
    # recompute each pair's distance from the inputs
    pos = {k: i for i, k in enumerate(ids)}
    recomputed = [abs(d[pos[a]] - d[pos[b]]) for a, b in pairs_of(res)]
    assert np.allclose(recomputed, res.pairs["distance"], rtol=0, atol=0)
    assert res.pairs["control_id"].is_unique and res.pairs["treated_id"].is_unique
    assert set(res.pairs["treated_id"]) <= set(ids[t == 1])
    assert set(res.pairs["control_id"]) <= set(ids[t == 0])
    assert res.n_pairs + res.n_unmatched_treated == t.sum()
    assert res.matched.sum() == 2 * res.n_pairs
    again = match_nearest(d, t, ids, caliper=0.2, order=order)
    assert again.pairs.equals(res.pairs)


def test_without_ties_the_matched_set_does_not_depend_on_row_order():
    d, t, ids = random_cohort(5)
    res = match_nearest(d, t, ids, caliper=0.2)
    perm = np.random.default_rng(9).permutation(len(d))
    shuffled = match_nearest(d[perm], t[perm], ids[perm], caliper=0.2)
    assert set(pairs_of(shuffled)) == set(pairs_of(res))


def test_each_pair_is_the_nearest_available_control_at_its_turn():
    # brute force: replay the greedy order and check the chosen control is a nearest one
    d, t, ids = random_cohort(11, n=120)
    res = match_nearest(d, t, ids, caliper=0.2)
    pos = {k: i for i, k in enumerate(ids)}
    used = set()
    for a, b in pairs_of(res):
        free = [j for j in np.flatnonzero(t == 0) if ids[j] not in used]
        best = min(abs(d[pos[a]] - d[j]) for j in free)
        assert abs(d[pos[a]] - d[pos[b]]) == best
        used.add(b)
    # every unmatched treated patient really has no free control within the caliper at the end
    free = np.array([j for j in np.flatnonzero(t == 0) if ids[j] not in used])
    for a in res.unmatched_treated_ids:
        assert np.min(np.abs(d[pos[a]] - d[free])) > res.caliper_distance


def test_treated_processed_in_descending_distance_order():
    d, t, ids = random_cohort(4)
    res = match_nearest(d, t, ids, caliper=None, order="largest")
    pos = {k: i for i, k in enumerate(ids)}
    dt = [d[pos[a]] for a in res.pairs["treated_id"]]
    assert dt == sorted(dt, reverse=True)
    assert res.pairs["pair"].tolist() == list(range(1, res.n_pairs + 1))


def test_matched_frame_and_mask():
    d, t, ids = random_cohort(6, n=60)
    frame = pd.DataFrame({"id": ids, "treatment": t, "x": d})
    res = match_nearest(d, t, ids, caliper=0.2)
    mf = res.matched_frame(frame)
    assert len(mf) == 2 * res.n_pairs
    assert (mf.groupby("pair")["treatment"].apply(list) == pd.Series([[1, 0]] * res.n_pairs,
            index=range(1, res.n_pairs + 1))).all()
    assert res.matched_mask(frame["id"][::-1].to_numpy()).tolist() == res.matched[::-1].tolist()
    with pytest.raises(InputError, match="do not correspond"):
        res.matched_mask(ids[:-1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(logit_ps=[0.1, np.inf, 0.3]), "not finite"),
        (dict(treatment=[1, 2, 0]), "0 or 1"),
        (dict(ids=["a", "a", "b"]), "unique"),
        (dict(treatment=[1, 1, 1]), "at least one treated and one control"),
        (dict(caliper=-0.2), "positive number"),
        (dict(caliper=True), "positive number"),
        (dict(order="random"), "order must be one of"),
        (dict(ids=["a", "b"]), "equal length"),
    ],
)
def test_input_errors(kwargs, message):
    args = dict(logit_ps=[0.1, 0.2, 0.3], treatment=[1, 0, 0], ids=["a", "b", "c"])
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        match_nearest(**args)
