"""Helpers of the end-to-end tests: the `kchem` command in a subprocess, small training runs."""

import json
import os
import subprocess
import sys

TINY = ["--limit", "120", "--epochs", "2", "--batch-size", "32", "--seed", "3", "--tokens", "v0", "--layers", "1"]


def kchem(*args, check=True, **kwargs):
    env = {**os.environ, "KCHEM_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "keras_chem.cli", *args], env=env, capture_output=True, text=True, check=check, **kwargs)


class Started:
    """A `kchem` command running in the background, its output going to a file (a pipe nobody
    reads while the test polls would fill up and stop the command)."""

    def __init__(self, args, log):
        self.log = log
        with open(log, "w") as handle:
            self.process = subprocess.Popen([sys.executable, "-m", "keras_chem.cli", *args], env={**os.environ, "KCHEM_PROGRESS": "0"},
                                            stdout=handle, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    def poll(self):
        return self.process.poll()

    def wait(self, timeout=600) -> tuple[int, str]:
        return self.process.wait(timeout=timeout), self.log.read_text()


def start_kchem(*args, log):
    return Started(args, log)


def train_args(out, folds=2, dataset="bbbp", extra=TINY):
    return ["train", "elembert", "--dataset", dataset, "--folds", str(folds), "--out", str(out), *extra]


def fold_worker_pid(run_dir, fold: int) -> int | None:
    """The pid of the process training `fold` (from `fold_<k>/worker.json`), if it has started."""
    path = run_dir / f"fold_{fold}" / "worker.json"
    try:
        return json.loads(path.read_text())["pid"]
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def check_round_trip_and_saved_model(run_dir, inputs: list, input_kind: str, scratch) -> None:
    """A fold model of `run_dir` saved again to `.keras` predicts the same on `inputs`, and the run's
    SavedModel export, loaded by `tf.saved_model.load`, predicts what the fold ensemble predicts (in this
    process: that TensorFlow alone serves an export, without Keras, is `test_export`'s check)."""
    import numpy as np
    import tensorflow as tf

    from keras_chem.export import ensemble, export_saved_model, fold_model_paths
    from keras_chem.models.registry import family_from_info
    from keras_chem.models.saving import load_model

    info = json.loads((run_dir / "model_info.json").read_text())
    preprocessor = family_from_info(info).preprocessor_from_config(info["preprocessor"])
    arrays = preprocessor.transform([str(i) for i in range(len(inputs))], inputs, input_kind).arrays
    assert len(next(iter(arrays.values()))) == len(inputs)
    model = load_model(fold_model_paths(run_dir)[0])
    model.save(scratch / "again.keras")
    np.testing.assert_allclose(load_model(scratch / "again.keras").predict(arrays, verbose=0), model.predict(arrays, verbose=0), atol=1e-6)
    path = export_saved_model(run_dir, scratch / "saved")
    expected = np.asarray(ensemble(run_dir).predict(arrays, verbose=0))
    exported = tf.saved_model.load(str(path))  # held: its variables go when it does
    served = exported.serve({name: tf.constant(value) for name, value in arrays.items()})
    np.testing.assert_allclose(np.asarray(served), expected, rtol=1e-5, atol=1e-5)


def crystal_examples() -> list:
    """Two good crystals (pymatgen rock salt, ASE copper), then three that a crystal graph model
    skips: 432 atoms, an unknown element, no atom."""
    import ase
    import ase.build
    import numpy as np
    from pymatgen.core import Lattice, Structure

    rocksalt = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    copper = ase.build.bulk("Cu", "fcc", a=3.6)
    too_big = ase.build.bulk("Si", "diamond", a=5.43).repeat((6, 6, 6))
    unknown_element = ase.Atoms(numbers=[0], cell=np.eye(3) * 4, pbc=True)  # a dummy atom "X"
    empty = ase.Atoms(cell=np.eye(3) * 4, pbc=True)
    return [rocksalt, copper, too_big, unknown_element, empty]
