import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from keras_chem.metrics import (
    binary_metrics,
    format_summary_markdown,
    multiclass_metrics,
    pooled_onehot_auc,
    regression_metrics,
    summarize,
)

pytestmark = pytest.mark.backend_independent

NAN = float("nan")


def pairwise_auc(labels, scores):
    """ROC-AUC by counting pairs: P(score_pos > score_neg) + 0.5 P(tie)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_binary_metrics_hand_computed():
    y = np.array([[0.0], [0.0], [1.0], [1.0]])
    p = np.array([[0.1], [0.4], [0.35], [0.8]])
    m = binary_metrics(y, p, ["t"])
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered -> 0.75
    assert m["roc_auc"] == pytest.approx(0.75)
    # ranking 0.8(+) 0.4(-) 0.35(+) 0.1(-): AP = (1/1 + 2/3) / 2
    assert m["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["per_task"]["t"]["n"] == 4 and m["per_task"]["t"]["n_positive"] == 2
    assert m["n_tasks_scored"] == 1


def test_binary_metrics_masks_missing_labels_and_skips_one_class_tasks():
    y = np.array([[0, 1, NAN], [0, NAN, 1], [1, 1, NAN], [1, 1, 1], [NAN, 1, NAN]])
    p = np.array([[0.1, 0.2, 0.3], [0.4, 0.9, 0.5], [0.35, 0.3, 0.9], [0.8, 0.7, 0.1], [0.99, 0.1, 0.0]])
    m = binary_metrics(y, p, ["a", "b", "c"])
    a = m["per_task"]["a"]
    assert a["n"] == 4 and a["roc_auc"] == pytest.approx(0.75)  # the NaN row (p=0.99) is ignored
    b = m["per_task"]["b"]
    assert math.isnan(b["roc_auc"]) and math.isnan(b["pooled_onehot_auc"]) and "one class" in b["note"]
    assert b["n"] == 4 and b["n_positive"] == 4
    c = m["per_task"]["c"]
    assert c["n"] == 2 and "note" in c and "note" not in a
    assert m["roc_auc"] == pytest.approx(0.75) and m["n_tasks_scored"] == 1  # only task a


def test_binary_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="0/1"):
        binary_metrics(np.array([[0.0], [2.0]]), np.array([[0.1], [0.2]]), ["t"])
    with pytest.raises(ValueError, match="NaN on 1 labelled"):
        binary_metrics(np.array([[0.0], [1.0]]), np.array([[0.1], [NAN]]), ["t"])
    with pytest.raises(ValueError, match="disagree"):
        binary_metrics(np.zeros((3, 2)), np.zeros((3, 2)), ["t"])


@pytest.mark.parametrize("prevalence", [0.035, 0.2, 0.8])
def test_constant_predictor_pooled_auc_is_max_prior(prevalence):
    n = 1000
    y = np.zeros(n)
    y[: int(round(prevalence * n))] = 1
    prior = np.full(n, y.mean())
    assert pooled_onehot_auc(y, prior) == pytest.approx(max(prevalence, 1 - prevalence))
    assert roc_auc_score(y, prior) == pytest.approx(0.5)
    m = binary_metrics(y[:, None], prior[:, None], ["t"])
    assert m["roc_auc"] == pytest.approx(0.5)
    assert m["pooled_onehot_auc"] == pytest.approx(max(prevalence, 1 - prevalence))
    # any constant above 0.5 scores π, below 0.5 scores 1 − π, exactly 0.5 scores 0.5
    assert pooled_onehot_auc(y, np.full(n, 0.9)) == pytest.approx(prevalence)
    assert pooled_onehot_auc(y, np.full(n, 0.1)) == pytest.approx(1 - prevalence)
    assert pooled_onehot_auc(y, np.full(n, 0.5)) == pytest.approx(0.5)


def test_pooled_auc_matches_flattened_pairwise_count():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.1).astype(float)
    p = np.clip(0.3 * y + rng.random(200) * 0.7, 0, 1)
    labels = np.stack([1 - y, y], 1).ravel()
    scores = np.stack([1 - p, p], 1).ravel()
    assert pooled_onehot_auc(y, p) == pytest.approx(pairwise_auc(labels, scores))
    assert pooled_onehot_auc(y, p) != pytest.approx(roc_auc_score(y, p))


def test_multiclass_metrics_hand_computed():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array(
        [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]]
    )
    m = multiclass_metrics(y, p, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["per_class"]["c"]["roc_auc"] == pytest.approx(pairwise_auc((y == 2).astype(int), p[:, 2]))
    onehot = np.eye(3)[y]
    assert m["pooled_onehot_auc"] == pytest.approx(pairwise_auc(onehot.ravel(), p.ravel()))
    assert "note" not in m


def test_multiclass_absent_class_and_missing_rows():
    y = np.array([0, 0, 1, 1, NAN])
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0]])
    m = multiclass_metrics(y, p, ["a", "b", "c"])
    assert m["n"] == 4 and "c" in m["note"]
    assert math.isnan(m["per_class"]["c"]["roc_auc"])
    auc_a = roc_auc_score(y[:4] == 0, p[:4, 0])
    auc_b = roc_auc_score(y[:4] == 1, p[:4, 1])
    assert m["roc_auc"] == pytest.approx((auc_a + auc_b) / 2)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="class indices"):
        multiclass_metrics(np.array([0, 3]), np.full((2, 3), 1 / 3), ["a", "b", "c"])


def test_regression_metrics_hand_computed_with_missing():
    y = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, NAN], [NAN, NAN]])
    p = np.array([[1.5, 4.0], [2.0, 7.0], [2.0, 0.0], [9.0, 9.0]])
    m = regression_metrics(y, p, ["a", "b"])
    a = m["per_task"]["a"]
    assert a["n"] == 3
    assert a["mae"] == pytest.approx(0.5)
    assert a["rmse"] == pytest.approx(math.sqrt(1.25 / 3))
    assert a["r2"] == pytest.approx(1 - 1.25 / 2.0)
    b = m["per_task"]["b"]
    assert b["mae"] == pytest.approx(1.5) and b["rmse"] == pytest.approx(math.sqrt(2.5))
    assert math.isnan(b["r2"]) and "constant" in b["note"]
    assert m["mae"] == pytest.approx(1.0) and m["r2"] == pytest.approx(a["r2"])
    with pytest.raises(ValueError, match="NaN"):
        regression_metrics(np.array([1.0, 2.0]), np.array([1.0, NAN]), ["a"])


def test_summarize_mean_std_and_nan_skipping():
    folds = [
        {"roc_auc": 0.7, "per_task": {"A": {"roc_auc": 0.6, "note": "x"}, "B": {"roc_auc": NAN}}},
        {"roc_auc": 0.8, "per_task": {"A": {"roc_auc": 0.8}, "B": {"roc_auc": 0.9}}},
        {"roc_auc": 0.9, "per_task": {"A": {"roc_auc": 1.0}, "B": {"roc_auc": 0.7}}},
    ]
    s = summarize(folds)
    assert s["roc_auc"]["mean"] == pytest.approx(0.8)
    assert s["roc_auc"]["std"] == pytest.approx(0.1)  # ddof=1
    assert s["roc_auc"]["n"] == 3 and s["roc_auc"]["values"] == [0.7, 0.8, 0.9]
    b = s["per_task"]["B"]["roc_auc"]
    assert b["n"] == 2 and b["values"] == [None, 0.9, 0.7]
    assert b["mean"] == pytest.approx(0.8) and b["std"] == pytest.approx(np.std([0.9, 0.7], ddof=1))
    assert "note" not in s["per_task"]["A"]
    one = summarize([{"mae": 2.0, "flag": True}])
    assert one["mae"]["n"] == 1 and math.isnan(one["mae"]["std"]) and "flag" not in one


def test_format_summary_markdown():
    folds = [
        {"roc_auc": 0.7, "per_task": {"A": {"roc_auc": 0.6}, "B": {"roc_auc": NAN}}},
        {"roc_auc": 0.8, "per_task": {"A": {"roc_auc": 0.8}, "B": {"roc_auc": NAN}}},
    ]
    md = format_summary_markdown(summarize(folds))
    assert "| roc_auc | 0.7500 ± 0.0707 | 2 |" in md
    assert "**per_task**" in md and "| A | 0.7000 ± 0.1414 |" in md and "| B | – |" in md
