"""elEmBERT speed: training samples/s and V1 featurization, each against a reference in the same run.

Training: the paper-size model (embed 32, 2 heads, 2 layers) on real Tox21 tokens, keras-chem's
pipeline (length-bucketed batches of 32) versus the original protocol (every sequence padded to
256, batch 32, `model.fit` on the padded array, Keras's default compilation). Both exclude
compilation (one warm-up epoch). Ours is compiled as `kchem train` compiles it.
Featurization: `bench/elembert_featurize.py` (vesin + vectorised PDFs versus ASE neighbor_list
and the notebooks' per-atom loop, same structures).

Run: `KERAS_BACKEND=jax .venv/bin/python bench/elembert_speed.py` (both backends are measured in
subprocesses when run without KERAS_BACKEND). Writes bench/results/elembert_speed.json and .md.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE_LENGTH = 256
BATCH_SIZE = 32
N_ROWS = 4096


def measure_train(n_rows: int = N_ROWS, epochs: int = 2) -> dict:
    import keras

    from keras_chem.data.loaders import load_dataset
    from keras_chem.models.base import TaskInfo
    from keras_chem.models.elembert import FAMILY, ElembertPreprocessor, build
    from keras_chem.models.heads import loss_for
    from keras_chem.training.batching import batches
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.fit import compile_model

    data = load_dataset("tox21", limit=n_rows)
    pre = ElembertPreprocessor(tokens="v0", max_atoms=REFERENCE_LENGTH - 2)
    features = pre.fit_transform(data.ids, data.inputs, data.input_kind)
    tokens, y = features.arrays["tokens"], data.targets[features.kept]
    task = TaskInfo("classification", data.target_names)
    config = resolve_model_config(FAMILY, {"tokens": "v0"})

    def rate(fit_one_epoch) -> float:
        fit_one_epoch()  # warm-up: compiles every shape
        started = time.perf_counter()
        for _ in range(epochs):
            fit_one_epoch()
        return epochs * len(tokens) / (time.perf_counter() - started)

    keras.utils.set_random_seed(0)
    ours = build(config, pre, task)
    compile_model(ours, FAMILY.loss(task), config)
    ours_batches = batches({"tokens": tokens}, y, pre, BATCH_SIZE, seed=0)
    ours_rate = rate(lambda: ours.fit(ours_batches, epochs=1, verbose=0))

    keras.utils.set_random_seed(0)
    padded = np.zeros((len(tokens), REFERENCE_LENGTH), dtype=np.int32)
    padded[:, : tokens.shape[1]] = tokens
    reference = build(config, pre, task)
    reference.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss_for(task))
    reference_rate = rate(lambda: reference.fit({"tokens": padded}, y, batch_size=BATCH_SIZE, epochs=1, verbose=0))
    return {
        "backend": keras.backend.backend(),
        "rows": int(len(tokens)),
        "mean_tokens_per_row": float(pre.sizes({"tokens": tokens}).mean()),
        "train_samples_per_s": round(ours_rate, 1),
        "reference_samples_per_s": round(reference_rate, 1),
        "train_ratio": round(ours_rate / reference_rate, 2),
    }


def _train_in_subprocess(backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = "import json, sys; sys.path.insert(0, 'bench'); import elembert_speed as b; print('RESULT' + json.dumps(b.measure_train()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=RESULTS.parent.parent)
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))[6:])


def main() -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from elembert_featurize import measure_featurize

    from keras_chem.io import atomic_write_json, atomic_write_text

    backends = [os.environ["KERAS_BACKEND"]] if "KERAS_BACKEND" in os.environ else ["jax", "tensorflow"]
    train = {b: _train_in_subprocess(b) for b in backends}
    featurize = measure_featurize()
    slowest = min(train.values(), key=lambda r: r["train_ratio"])
    result = {
        "train_ratio": slowest["train_ratio"],  # the lower of the backends measured
        "train_ratio_backend": slowest["backend"],
        "train": train,
        "featurize_ratio": featurize["featurize_ratio"],
        "featurize": featurize,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "elembert_speed.json", result)
    markdown = render_markdown(result)
    atomic_write_text(RESULTS / "elembert_speed.md", markdown)
    print(markdown)
    return result


def render_markdown(result: dict) -> str:
    train, featurize = result["train"], result["featurize"]
    lines = [
        "| measurement | keras-chem | reference | ratio |",
        "|---|---|---|---|",
        *[
            f"| training samples/s ({r['backend']}, {r['rows']} Tox21 rows, batch {BATCH_SIZE}) | {r['train_samples_per_s']} "
            f"| {r['reference_samples_per_s']} (padded to {REFERENCE_LENGTH}) | {r['train_ratio']}× |"
            for r in train.values()
        ],
        f"| V1 tokens/s (crystals) | {featurize['ours_tokens_per_second']:,.0f} | {featurize['reference_tokens_per_second']:,.0f} "
        f"(ASE neighbor_list pipeline) | {featurize['featurize_ratio']:.1f}× |",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
