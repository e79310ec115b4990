"""Whole-dataset metrics against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tfft.tasks import metrics


def from_confusion(confusion: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) realising a confusion matrix (rows: true class, columns: predicted)."""
    labels, predictions = [], []
    for true, row in enumerate(confusion):
        for predicted, count in enumerate(row):
            labels += [true] * count
            predictions += [predicted] * count
    order = np.random.default_rng(0).permutation(len(labels))  # order must not matter
    return np.array(predictions)[order], np.array(labels)[order]


# --- correlations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pearson_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=200)
    y = 0.5 * x + rng.normal(size=200)
    assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
    assert metrics.pearson(x, -y) == pytest.approx(-stats.pearsonr(x, y)[0], abs=1e-12)


def test_pearson_float32_input():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=100).astype(np.float32), rng.normal(size=100).astype(np.float32)
    expected = stats.pearsonr(x.astype(np.float64), y.astype(np.float64))[0]
    assert metrics.pearson(x, y) == pytest.approx(expected, abs=1e-6)


def test_pearson_exact_linear():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert metrics.pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert metrics.pearson(x, -2 * x) == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_spearman_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=150)
    y = np.exp(x) + rng.normal(scale=0.5, size=150)
    assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spearman_with_ties_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, size=80).astype(np.float64)  # many ties
    y = x + rng.integers(0, 3, size=80)  # ties too, correlated with x
    assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)


def test_ranks_average_ties():
    values = np.array([10.0, 20.0, 10.0, 30.0, 20.0, 20.0, 5.0])
    # 5 -> 1; the two 10s share ranks 2,3 -> 2.5; the three 20s share 4,5,6 -> 5; 30 -> 7.
    expected = [2.5, 5.0, 2.5, 7.0, 5.0, 5.0, 1.0]
    np.testing.assert_array_equal(metrics._ranks(values), expected)
    np.testing.assert_array_equal(metrics._ranks(values), stats.rankdata(values))


def test_spearman_is_rank_based():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert metrics.spearman(x, x**5) == pytest.approx(1.0)
    assert metrics.spearman(x, -np.exp(x)) == pytest.approx(-1.0)


def test_constant_input_gives_zero():
    y = np.random.default_rng(0).normal(size=20)
    constant = np.full(20, 3.0)
    assert metrics.pearson(constant, y) == 0.0
    assert metrics.pearson(y, constant) == 0.0
    assert metrics.spearman(constant, y) == 0.0
    assert metrics.spearman(y, constant) == 0.0
    assert metrics.pearson(constant, constant) == 0.0


def test_constant_non_representable_input_gives_zero():
    constant = np.full(3, 0.1)
    assert metrics.pearson(constant, constant) == 0.0
    assert metrics.pearson(np.full(7, 0.1, np.float32), np.full(7, 0.3, np.float32)) == 0.0


# --- classification --------------------------------------------------------------------------------


def test_binary_f1_mcc_accuracy_by_hand():
    # TP=3, FN=2, FP=1, TN=4 (rows: true 0/1, columns: predicted 0/1).
    predictions, labels = from_confusion([[4, 1], [2, 3]])
    tp, fn, fp, tn = 3, 2, 1, 4
    expected_f1 = 2 * tp / (2 * tp + fp + fn)  # 6 / 9
    expected_mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert expected_f1 == pytest.approx(2 / 3)
    assert expected_mcc == pytest.approx(10 / math.sqrt(600))
    assert metrics.f1_score(predictions, labels, 2) == pytest.approx(expected_f1, abs=1e-12)
    assert metrics.matthews_corrcoef(predictions, labels, 2) == pytest.approx(expected_mcc, abs=1e-12)
    assert metrics.accuracy(predictions, labels) == pytest.approx(0.7)


def test_binary_f1_is_of_class_one_not_macro():
    # Class 1: TP=1, FP=0, FN=3 -> F1 = 2/5. Class 0 would be 2*5/(5+8) = 10/13.
    predictions, labels = from_confusion([[5, 0], [3, 1]])
    assert metrics.f1_score(predictions, labels, 2) == pytest.approx(2 / 5)


def test_three_class_mcc_and_macro_f1_by_hand():
    confusion = [[3, 1, 0], [1, 2, 1], [0, 2, 4]]
    predictions, labels = from_confusion(confusion)
    # s = 14 examples, c = 9 correct, true counts t = (4, 4, 6), predicted counts p = (4, 5, 5).
    s, c, t, p = 14, 9, (4, 4, 6), (4, 5, 5)
    numerator = c * s - sum(tk * pk for tk, pk in zip(t, p, strict=True))  # 126 - 66 = 60
    denominator = math.sqrt((s**2 - sum(pk * pk for pk in p)) * (s**2 - sum(tk * tk for tk in t)))
    assert (numerator, denominator) == (60, pytest.approx(math.sqrt(130 * 128)))
    assert metrics.matthews_corrcoef(predictions, labels, 3) == pytest.approx(numerator / denominator)
    # Per-class F1 = 2 C_kk / (t_k + p_k): 6/8, 4/9, 8/11.
    expected_f1 = (6 / 8 + 4 / 9 + 8 / 11) / 3
    assert metrics.f1_score(predictions, labels, 3) == pytest.approx(expected_f1, abs=1e-12)
    assert metrics.accuracy(predictions, labels) == pytest.approx(9 / 14)


def test_mcc_perfect_and_inverted():
    labels = np.array([0, 1, 1, 0, 1, 0])
    assert metrics.matthews_corrcoef(labels, labels, 2) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef(1 - labels, labels, 2) == pytest.approx(-1.0)
    three = np.array([0, 1, 2, 2, 1, 0])
    assert metrics.matthews_corrcoef(three, three, 3) == pytest.approx(1.0)
    assert metrics.f1_score(three, three, 3) == pytest.approx(1.0)


def test_no_positives():
    labels = np.zeros(6, dtype=int)
    # Nothing positive anywhere: F1 of class 1 is 0, MCC is 0 (no division by zero).
    assert metrics.f1_score(labels, labels, 2) == 0.0
    assert metrics.matthews_corrcoef(labels, labels, 2) == 0.0
    # Only predicted positives, none true: F1 = 0; a constant prediction has MCC 0.
    assert metrics.f1_score(np.ones(6, dtype=int), labels, 2) == 0.0
    assert metrics.matthews_corrcoef(np.ones(6, dtype=int), labels, 2) == 0.0
    assert metrics.matthews_corrcoef(np.ones(6, dtype=int), np.array([0, 1, 0, 1, 1, 0]), 2) == 0.0


def test_macro_f1_counts_absent_class_as_zero():
    labels = np.array([0, 1, 0, 1])
    assert metrics.f1_score(labels, labels, 3) == pytest.approx(2 / 3)


# --- cross-entropy and softmax ---------------------------------------------------------------------


def test_softmax_cross_entropy_matches_numpy_log_softmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(50, 4))
    labels = rng.integers(0, 4, size=50)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.mean([log_softmax[i, labels[i]] for i in range(50)])
    assert metrics.softmax_cross_entropy(logits, labels) == pytest.approx(expected, rel=1e-12)
    assert metrics.softmax_cross_entropy(logits.astype(np.float32), labels) == pytest.approx(
        expected, rel=1e-5)


def test_softmax_cross_entropy_small_case_and_large_logits():
    # Uniform logits: -log(1/3) whatever the label.
    assert metrics.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 2])) == pytest.approx(math.log(3))
    # Large logits must not overflow: CE = 1000 + log(1 + e^-1000) for the wrong class.
    logits = np.array([[1000.0, 0.0], [1000.0, 0.0]])
    assert metrics.softmax_cross_entropy(logits, np.array([1, 0])) == pytest.approx(500.0)


def test_softmax():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(5, 3))
    expected = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(metrics.softmax(logits), expected, rtol=1e-12)
    large = metrics.softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(large, [[0.5, 0.5, 0.0]], atol=1e-12)
