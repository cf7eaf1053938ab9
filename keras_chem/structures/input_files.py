"""Read a file of inputs to predict on, whatever format the dataset loaders read.

CSV (a SMILES or formula column), Matbench JSON (`orient="split"`), CEGANN-style JSON records,
a JSON list of pymatgen `Structure` dicts, CIF (one or many data blocks), POSCAR, extxyz (one or
many frames) and SDF (molecules with their 3-D coordinates, hydrogens kept), each optionally gzipped. The format comes from the file name where it
says one, else from the content. One entry that cannot be read (a broken CIF block, a
malformed frame, a bad structure dict) becomes a row with a reason; a file that cannot be
read at all raises `InputFileError`, naming the formats tried.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS = ("csv", "matbench_json", "cegann_json", "pymatgen_json", "cif", "poscar", "extxyz", "sdf")
SMILES_COLUMNS = ("smiles",)
FORMULA_COLUMNS = ("formula", "composition")
ID_COLUMNS = ("id", "mbid", "material_id", "name", "mol_id", "compound_id")


class InputFileError(ValueError):
    """The file could not be read in any of the supported formats."""


@dataclass
class InputFile:
    """Entries in file order: `ids`, `inputs` (None where unreadable, with `reasons[i]`), the
    input kind ("smiles", "composition" or "structure") and, for CSV, the original columns."""

    path: Path
    format: str
    kind: str
    ids: list[str]
    inputs: list[Any]
    reasons: dict[int, str] = field(default_factory=dict)
    columns: dict[str, list[str]] | None = None


def read_input_file(path: str | Path, column: str | None = None) -> InputFile:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    raw = path.read_bytes()
    name = path.name.lower()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise InputFileError(f"{path}: a corrupt gzip file ({error})") from None
        name = name.removesuffix(".gz")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: not a text file (tried {_tried()})") from None
    guesses = _formats_by_name(name) or _formats_by_content(text)
    failures = []
    for fmt in guesses:
        try:
            return _READERS[fmt](path, text, column)
        except InputFileError:
            raise
        except Exception as error:  # noqa: BLE001 - the next format is tried, every failure is reported
            failures.append(f"{fmt}: {_one_line(error)}")
    detail = "; ".join(failures) if failures else "its content matches none of them"
    raise InputFileError(f"cannot read {path} as {_tried()} ({detail})")


def _tried() -> str:
    return "CSV, Matbench JSON, CEGANN JSON, a JSON list of pymatgen structures, CIF, POSCAR, extxyz or SDF"


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())[:300]


def _formats_by_name(name: str) -> list[str]:
    if name.endswith(".csv"):
        return ["csv"]
    if name.endswith(".json"):
        return ["matbench_json", "cegann_json", "pymatgen_json"]
    if name.endswith(".cif"):
        return ["cif"]
    if name.endswith((".extxyz", ".xyz")):
        return ["extxyz"]
    if name.endswith((".sdf", ".mol")):
        return ["sdf"]
    if name.endswith((".vasp", ".poscar")) or name.startswith(("poscar", "contcar")):
        return ["poscar"]
    return []


def _formats_by_content(text: str) -> list[str]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return ["matbench_json", "cegann_json", "pymatgen_json"]
    if re.search(r"^\s*data_", text, re.MULTILINE) and "_atom_site" in text:
        return ["cif"]
    lines = stripped.splitlines()
    if "M  END" in text:
        return ["sdf"]
    if lines and lines[0].strip().isdigit():
        return ["extxyz"]
    if len(lines) >= 5 and _floats(lines[1], 1) and all(_floats(line, 3) for line in lines[2:5]):
        return ["poscar"]
    if lines and "," in lines[0]:
        return ["csv"]
    return []


def _floats(line: str, count: int) -> bool:
    parts = line.split()
    if len(parts) < count:
        return False
    try:
        [float(p) for p in parts[:count]]
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- CSV


def _read_csv(path: Path, text: str, column: str | None) -> InputFile:
    import pandas as pd

    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    if table.shape[1] == 0:
        raise ValueError("no columns")
    lower = {c.lower(): c for c in table.columns}
    if column is not None and column not in table.columns:
        raise InputFileError(f"{path}: no column {column!r}; columns: {', '.join(table.columns)}")
    name = column or next((lower[c] for c in (*SMILES_COLUMNS, *FORMULA_COLUMNS) if c in lower), None)
    if name is None:
        raise InputFileError(
            f"{path}: no 'smiles', 'formula' or 'composition' column; pass --column (columns: {', '.join(table.columns)})"
        )
    kind = "composition" if name.lower() in FORMULA_COLUMNS else "smiles"
    id_column = next((lower[c] for c in ID_COLUMNS if c in lower and lower[c] != name), None)
    values = table[name].tolist()
    ids = table[id_column].tolist() if id_column else [str(i) for i in range(len(values))]
    reasons = {i: f"empty {name!r} cell" for i, v in enumerate(values) if not v.strip()}
    inputs = [None if i in reasons else v for i, v in enumerate(values)]
    return InputFile(path, "csv", kind, ids, inputs, reasons, columns={c: table[c].tolist() for c in table.columns})


# ---------------------------------------------------------------- JSON


def _entries(path: Path, fmt: str, kind: str, ids: list[str], items: list, convert) -> InputFile:
    inputs, reasons = [], {}
    for i, item in enumerate(items):
        try:
            inputs.append(convert(item))
        except Exception as error:  # noqa: BLE001 - one bad entry is a row with its reason
            inputs.append(None)
            reasons[i] = f"unreadable entry: {_one_line(error)}"
    return InputFile(path, fmt, kind, ids, inputs, reasons)


def _structure(item):
    from keras_chem.structures.crystals import to_atoms

    if not isinstance(item, dict):
        raise ValueError(f"expected a structure object, got {type(item).__name__}")
    return to_atoms(item)


def _formula(item):
    if not isinstance(item, str) or not item.strip():
        raise ValueError(f"expected a formula string, got {item!r}")
    return item


def _read_matbench_json(path: Path, text: str, column: str | None) -> InputFile:
    blob = json.loads(text)
    if not (isinstance(blob, dict) and "columns" in blob and "data" in blob):
        raise ValueError("not a Matbench (orient='split') object with 'columns' and 'data'")
    columns = list(blob["columns"])
    name = column or next((c for c in ("structure", "composition", "formula") if c in columns), None)
    if name not in columns:
        raise InputFileError(f"{path}: no column {name or 'structure/composition'!r}; columns: {', '.join(map(str, columns))}")
    at = columns.index(name)
    items = [row[at] if isinstance(row, list) and len(row) > at else None for row in blob["data"]]
    ids = [str(i) for i in blob.get("index", range(len(items)))]
    if len(ids) != len(items):
        raise ValueError(f"{len(ids)} index entries for {len(items)} rows")
    kind = "structure" if any(isinstance(item, dict) for item in items) else "composition"
    return _entries(path, "matbench_json", kind, ids, items, _structure if kind == "structure" else _formula)


def _read_cegann_json(path: Path, text: str, column: str | None) -> InputFile:
    records = json.loads(text)
    if not (isinstance(records, list) and records and all(isinstance(r, dict) for r in records)
            and any({"lattice", "species", "frac_coords"} <= set(r) for r in records)):
        raise ValueError("not a list of {lattice, species, frac_coords} records")
    ids = [f"{r['split']}/{r.get('id', i)}" if "split" in r else str(r.get("id", i)) for i, r in enumerate(records)]
    return _entries(path, "cegann_json", "structure", ids, records, _structure)


def _read_pymatgen_json(path: Path, text: str, column: str | None) -> InputFile:
    blob = json.loads(text)
    items = [blob] if isinstance(blob, dict) else blob
    if not (isinstance(items, list) and items and any(isinstance(d, dict) and "sites" in d for d in items)):
        raise ValueError("not a pymatgen structure dict or a list of them")
    ids = [str(d.get("id", i)) if isinstance(d, dict) else str(i) for i, d in enumerate(items)]
    return _entries(path, "pymatgen_json", "structure", ids, items, _structure)


# ---------------------------------------------------------------- CIF, POSCAR, extxyz


def _read_cif(path: Path, text: str, column: str | None) -> InputFile:
    starts = [m.start() for m in re.finditer(r"^\s*data_", text, re.MULTILINE)]
    if not starts:
        raise ValueError("no data_ block")
    blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]
    ids = [block.split(None, 1)[0].removeprefix("data_") or str(i) for i, block in enumerate(blocks)]
    return _entries(path, "cif", "structure", ids, blocks, _cif_block)


def _cif_block(block: str):
    import ase.io

    from keras_chem.structures.crystals import to_atoms

    try:
        return ase.io.read(io.StringIO(block), format="cif")
    except Exception as ase_error:  # noqa: BLE001 - pymatgen reads some CIFs ASE does not
        import warnings

        from pymatgen.io.cif import CifParser

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ASE's error is the one reported
                structures = CifParser.from_str(block).parse_structures(primitive=False)
        except Exception:  # noqa: BLE001
            raise ase_error from None
        if not structures:
            raise ase_error from None
        return to_atoms(structures[0])


def _read_poscar(path: Path, text: str, column: str | None) -> InputFile:
    import ase.io

    atoms = ase.io.read(io.StringIO(text), format="vasp")
    return InputFile(path, "poscar", "structure", [text.splitlines()[0].strip() or "0"], [atoms])


def _read_extxyz(path: Path, text: str, column: str | None) -> InputFile:
    """Frame by frame, so that one malformed frame is one row with a reason."""
    import ase.io

    lines = text.splitlines()
    ids, inputs, reasons, at = [], [], {}, 0
    while at < len(lines):
        if not lines[at].strip():
            at += 1
            continue
        i = len(inputs)
        count = lines[at].strip()
        if not count.isdigit():
            if i == 0:
                raise ValueError(f"line {at + 1} is not an atom count")
            ids.append(str(i))
            inputs.append(None)
            reasons[i] = f"unreadable from line {at + 1} on (expected an atom count, got {count[:40]!r})"
            break
        frame = lines[at : at + int(count) + 2]
        at += int(count) + 2
        try:
            atoms = ase.io.read(io.StringIO("\n".join(frame) + "\n"), format="extxyz")
            inputs.append(atoms)
            ids.append(str(atoms.info.get("name", atoms.info.get("id", i))))
        except Exception as error:  # noqa: BLE001 - one bad frame is a row with its reason
            inputs.append(None)
            ids.append(str(i))
            reasons[i] = f"unreadable frame: {_one_line(error)}"
    if not inputs:
        raise ValueError("no frames")
    return InputFile(path, "extxyz", "structure", ids, inputs, reasons)


def _read_sdf(path: Path, text: str, column: str | None) -> InputFile:
    """Record by record with RDKit (hydrogens and coordinates as written); a record RDKit cannot read is a row with a reason."""
    import ase
    from rdkit import Chem, rdBase

    records = [block for block in text.split("$$$$") if block.strip()]
    if not records or "M  END" not in records[0]:
        raise ValueError("no MOL block")
    ids, inputs, reasons = [], [], {}
    for i, block in enumerate(records):
        with rdBase.BlockLogs():
            mol = Chem.MolFromMolBlock(block.lstrip("\n"), removeHs=False, sanitize=False)
        name = mol.GetProp("_Name").strip() if mol is not None and mol.HasProp("_Name") else ""
        ids.append(name or str(i))
        if mol is None or mol.GetNumConformers() == 0:
            inputs.append(None)
            reasons[i] = "unreadable MOL block" if mol is None else "no coordinates"
            continue
        numbers = [atom.GetAtomicNum() for atom in mol.GetAtoms()]
        inputs.append(ase.Atoms(numbers=numbers, positions=mol.GetConformer().GetPositions(), pbc=False))
    return InputFile(path, "sdf", "structure", ids, inputs, reasons)


_READERS = {
    "csv": _read_csv,
    "matbench_json": _read_matbench_json,
    "cegann_json": _read_cegann_json,
    "pymatgen_json": _read_pymatgen_json,
    "cif": _read_cif,
    "poscar": _read_poscar,
    "extxyz": _read_extxyz,
    "sdf": _read_sdf,
}
