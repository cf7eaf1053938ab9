import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from keras_chem.training import plots

pytestmark = pytest.mark.backend_independent

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BINARY = {"task": "classification", "target_names": ["NR-AR", "SR p53/x"], "class_names": None}
MULTI = {"task": "multiclass", "target_names": ["label"], "class_names": ["cubic", "hex", "mono"]}
REGRESSION = {"task": "regression", "target_names": ["gap", "e_form"], "class_names": None}


def _write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _cell(value):
    return "" if np.isnan(value) else f"{value:.8g}"


def _binary_run(root):
    """3 folds, 2 tasks; NaN labels; in fold 2 the second task has negatives only."""
    rng = np.random.default_rng(1)
    names = BINARY["target_names"]
    for k in range(3):
        n = 40
        y = rng.integers(0, 2, size=(n, 2)).astype(float)
        y[rng.random((n, 2)) < 0.2] = np.nan
        if k == 2:
            y[:, 1] = np.where(np.isnan(y[:, 1]), np.nan, 0.0)
        p = np.clip(0.5 * np.nan_to_num(y, nan=0.5) + 0.6 * rng.random((n, 2)) - 0.05, 0, 1)
        rows = [[100 * k + i, f"m{k}_{i}", *map(_cell, y[i]), *map(_cell, p[i])] for i in range(n)]
        _write_csv(root / f"fold_{k}" / "test_predictions.csv", ["row", "id", *names, *[f"{t}_pred" for t in names]], rows)
    return root


def _multiclass_run(root):
    """3 folds, 3 classes; fold 1 holds no 'mono' row."""
    rng = np.random.default_rng(2)
    classes = MULTI["class_names"]
    for k in range(3):
        n = 45
        y = rng.integers(0, 2 if k == 1 else 3, size=n)
        logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y]
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        rows = [[100 * k + i, f"c{k}_{i}", classes[y[i]], classes[int(probs[i].argmax())], *map(_cell, probs[i])] for i in range(n)]
        _write_csv(root / f"fold_{k}" / "test_predictions.csv", ["row", "id", "label", "predicted", *[f"prob_{c}" for c in classes]], rows)
    return root


def _regression_run(root):
    rng = np.random.default_rng(3)
    names = REGRESSION["target_names"]
    for k in range(3):
        n = 30
        y = rng.normal(size=(n, 2))
        y[rng.random((n, 2)) < 0.1] = np.nan
        p = np.nan_to_num(y) + 0.3 * rng.normal(size=(n, 2))
        rows = [[100 * k + i, f"r{k}_{i}", *map(_cell, y[i]), *map(_cell, p[i])] for i in range(n)]
        _write_csv(root / f"fold_{k}" / "test_predictions.csv", ["row", "id", *names, *[f"{t}_pred" for t in names]], rows)
    return root


def _assert_png(path, min_px=100):
    import matplotlib.image

    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_px and image.shape[1] >= min_px


def _fold_columns(root, k):
    with (root / f"fold_{k}" / "test_predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return rows


def _sklearn_auc(rows, name):
    y = np.array([float(r[name]) if r[name] else np.nan for r in rows])
    p = np.array([float(r[f"{name}_pred"]) for r in rows])
    keep = ~np.isnan(y)
    return y[keep], p[keep]


@pytest.fixture
def legends(monkeypatch):
    """Legend texts and titles of every figure, captured just before it is saved."""
    captured = {}
    original = plots._save

    def spy(fig, path):
        texts = []
        for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]:
            if legend is not None:
                texts += [legend.get_title().get_text(), *(t.get_text() for t in legend.get_texts())]
        captured[path.name] = texts
        return original(fig, path)

    from keras_chem.training.plots import confusion, roc, tsne

    for module in (roc, confusion, tsne):
        monkeypatch.setattr(module, "_save", spy)
    return captured


def test_classification_run_plots_and_aucs_match_sklearn(tmp_path, legends):
    run = _binary_run(tmp_path / "run")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 120).astype(float)
    labels[:10] = np.nan
    embeddings = rng.normal(size=(120, 8)) + 2 * np.nan_to_num(labels)[:, None]

    written = plots.write_run_plots(run, BINARY, embeddings, labels, label_name="NR-AR")

    names = {p.name for p in written}
    assert names == {"roc_NR-AR.png", "roc_SR_p53_x.png", "roc_all_tasks.png", "confusion_matrix.png", "tsne_cls.png"}
    for path in written:
        _assert_png(path)
    summary = json.loads((run / plots.ROC_JSON).read_text())
    for name in BINARY["target_names"]:
        entry = summary["per_task"][name]
        expected, ys, ps = [], [], []
        for k in range(3):
            y, p = _sklearn_auc(_fold_columns(run, k), name)
            ys.append(y)
            ps.append(p)
            if len(set(y)) < 2:
                assert entry["auc_by_fold"][str(k)] is None
                assert "one class only" in entry["notes"][str(k)]
                assert any(f"fold {k}: one class only" in t for t in legends[f"roc_{plots._safe_name(name, set())}.png"])
                continue
            auc = roc_auc_score(y, p)
            expected.append(auc)
            assert entry["auc_by_fold"][str(k)] == pytest.approx(auc, abs=1e-12)
            assert f"fold {k} (AUC {auc:.3f})" in legends[f"roc_{plots._safe_name(name, set())}.png"]
        assert entry["mean"] == pytest.approx(np.mean(expected))
        assert entry["std"] == pytest.approx(np.std(expected, ddof=1))
        assert entry["pooled_auc"] == pytest.approx(roc_auc_score(np.concatenate(ys), np.concatenate(ps)))
        legend = legends[f"roc_{plots._safe_name(name, set())}.png"]
        assert legend[0] == f"mean AUC {np.mean(expected):.3f} ± {np.std(expected, ddof=1):.3f} ({len(expected)} folds)"
    assert summary["per_task"]["SR p53/x"]["n_folds"] == 2


def test_multiclass_run_plots(tmp_path):
    run = _multiclass_run(tmp_path / "run")
    written = plots.write_run_plots(run, MULTI)
    assert [p.name for p in written] == ["roc_classes.png", "confusion_matrix.png"]
    for path in written:
        _assert_png(path)
    entry = json.loads((run / plots.ROC_JSON).read_text())["per_class"]["mono"]
    assert entry["auc_by_fold"]["1"] is None and "all negative" in entry["notes"]["1"]
    rows = _fold_columns(run, 0)
    y = np.array([r["label"] == "mono" for r in rows])
    p = np.array([float(r["prob_mono"]) for r in rows])
    assert entry["auc_by_fold"]["0"] == pytest.approx(roc_auc_score(y, p))


def test_regression_writes_parity_instead(tmp_path):
    run = _regression_run(tmp_path / "run")
    assert plots.roc_curves(run, REGRESSION) == []
    written = plots.write_run_plots(run, REGRESSION)
    assert [p.name for p in written] == ["parity.png"]
    _assert_png(written[0])
    assert not (run / "confusion_matrix.png").exists()


def test_empty_run_directory_writes_nothing(tmp_path):
    assert plots.write_run_plots(tmp_path, BINARY) == []
    assert plots.confusion_matrix_png(tmp_path, MULTI) is None


def test_tsne_few_points_continuous_and_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    few = plots.embedding_tsne(rng.normal(size=(3, 4)), np.array([0, 1, 1]), tmp_path / "few.png", "few")
    _assert_png(few)
    x = rng.normal(size=(80, 5))
    values = x[:, 0] * 3.7
    values[:5] = np.nan
    first = plots.embedding_tsne(x, values, tmp_path / "a.png", "continuous")
    second = plots.embedding_tsne(x, values, tmp_path / "b.png", "continuous")
    _assert_png(first)
    assert first.read_bytes() == second.read_bytes()
    named = plots.embedding_tsne(x, rng.integers(0, 3, 80), tmp_path / "named.png", "classes",
                                 label_names=["cubic", "hex", "mono"], max_points=40)
    _assert_png(named)


def test_subsample_is_deterministic_and_keeps_rare_classes():
    codes = np.array([0] * 990 + [1] * 9 + [-1])
    picked = plots._subsample(len(codes), codes, 100, seed=0)
    assert len(picked) == 100 and np.all(np.diff(picked) > 0)
    assert set(codes[picked]) == {0, 1, -1}
    assert np.array_equal(picked, plots._subsample(len(codes), codes, 100, seed=0))
    assert len(plots._subsample(5000, None, 3000, seed=1)) == 3000


def test_safe_names_are_unique():
    used = set()
    assert plots._safe_name("SR p53/x", used) == "SR_p53_x"
    assert plots._safe_name("SR_p53_x", used) == "SR_p53_x_2"
    assert plots._safe_name("../", used) == "task"


def test_import_is_cheap():
    code = ("import sys, keras_chem.training.plots; "
            "print(sorted(m for m in ('matplotlib', 'keras', 'tensorflow', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
