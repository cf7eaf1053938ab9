"""How far the project's CGCNN-style element table (from pymatgen data) agrees with the original
`atom_init.json` of CGCNN (shared/data/cgcnn_atom_init).

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/cgcnn_table.py`.
Writes bench/results/cgcnn_table.json and .md.
"""

from __future__ import annotations

from pathlib import Path

from keras_chem.data.fetch import data_dirs
from keras_chem.featurizers.cgcnn_elements import table_agreement
from keras_chem.io import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    reference = next(d / "cgcnn_atom_init" / "atom_init.json" for d in data_dirs() if (d / "cgcnn_atom_init").is_dir())
    result = table_agreement(reference)
    atomic_write_json(RESULTS / "cgcnn_table.json", result)
    lines = [
        "| elements | rows identical | entries agreeing | per section (elements agreeing) |",
        "|---|---|---|---|",
        f"| {result['rows']} | {result['rows_identical']} | {result['entries_agreeing']} / {result['entries']} "
        f"({100 * result['entries_fraction']:.1f} %) | " + ", ".join(f"{k} {v}" for k, v in result["sections"].items()) + " |",
    ]
    atomic_write_text(RESULTS / "cgcnn_table.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
