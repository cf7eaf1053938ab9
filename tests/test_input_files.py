"""`kchem predict` input files: every format the loaders read, gzipped or not, detected from the
content where the name does not say it; a bad entry is a row with a reason, an unreadable file
one clear error."""

import gzip
import json

import ase
import ase.build
import ase.io
import pytest
from pymatgen.core import Lattice, Structure

from keras_chem.structures.input_files import InputFileError, read_input_file

pytestmark = pytest.mark.backend_independent

ROCKSALT = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
BROKEN = {"@module": "pymatgen.core.structure", "sites": [{"species": [{"element": "Xq", "occu": 1}], "abc": [0, 0, 0]}],
          "lattice": {"matrix": [[3, 0, 0], [0, 3, 0], [0, 0, 3]]}}


def _write(path, text: str, gz: bool = False):
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_matbench_json_keeps_its_index_as_ids_and_reports_a_bad_structure(tmp_path, gz):
    blob = {"index": [7, 8, 9], "columns": ["structure", "target"],
            "data": [[ROCKSALT.as_dict(), 1.0], [BROKEN, 2.0], [ROCKSALT.as_dict(), 3.0]]}
    file = read_input_file(_write(tmp_path / ("mb.json.gz" if gz else "mb.json"), json.dumps(blob), gz))
    assert (file.format, file.kind, file.ids) == ("matbench_json", "structure", ["7", "8", "9"])
    assert isinstance(file.inputs[0], ase.Atoms) and file.inputs[1] is None and "Xq" in file.reasons[1]


def test_matbench_composition_json(tmp_path):
    blob = {"index": ["a", "b"], "columns": ["composition", "gap"], "data": [["Fe2O3", 1.0], [None, 2.0]]}
    file = read_input_file(_write(tmp_path / "c.json", json.dumps(blob)))
    assert file.kind == "composition" and file.inputs[0] == "Fe2O3" and 1 in file.reasons


def test_cegann_records_and_pymatgen_lists(tmp_path):
    records = [{"id": "5", "split": "train", "label": "1", "lattice": [[4, 0, 0], [0, 4, 0], [0, 0, 4]], "species": ["Cu"],
                "frac_coords": [[0, 0, 0]]}, {"id": "6", "split": "train", "lattice": [[1, 0]], "species": ["Cu"], "frac_coords": [[0, 0, 0]]}]
    cegann = read_input_file(_write(tmp_path / "c.json", json.dumps(records)))
    assert cegann.format == "cegann_json" and cegann.ids == ["train/5", "train/6"] and cegann.inputs[1] is None
    listed = read_input_file(_write(tmp_path / "structures", json.dumps([ROCKSALT.as_dict(), BROKEN])))
    assert listed.format == "pymatgen_json" and listed.ids == ["0", "1"] and listed.inputs[1] is None and listed.reasons[1]


def test_cif_blocks_one_broken(tmp_path):
    good = ROCKSALT.to(fmt="cif")
    text = good.replace("data_", "data_salt", 1) + "\ndata_broken\n_cell_length_a 1\nloop_\n_atom_site_label\nXX\n"
    file = read_input_file(_write(tmp_path / "two.cif.gz", text, gz=True))
    assert file.format == "cif" and len(file.inputs) == 2 and file.ids[1] == "broken"
    assert len(file.inputs[0]) == 2 and file.inputs[1] is None and file.reasons[1]


def test_poscar_and_extxyz_frames_detected_from_the_content(tmp_path):
    ase.io.write(tmp_path / "POSCAR", ase.build.bulk("Cu", "fcc", a=3.6), format="vasp")
    assert read_input_file(tmp_path / "POSCAR").format == "poscar"
    (tmp_path / "renamed").write_bytes((tmp_path / "POSCAR").read_bytes())
    assert read_input_file(tmp_path / "renamed").format == "poscar"

    frames = [ase.build.bulk("Cu", "fcc", a=3.6), ase.build.molecule("H2O")]
    frames[0].info["name"] = "copper"
    ase.io.write(tmp_path / "f.extxyz", frames, format="extxyz")
    text = (tmp_path / "f.extxyz").read_text()
    broken = text + "2\nProperties=species:S:1:pos:R:3\nCu 0 0\n"
    file = read_input_file(_write(tmp_path / "frames.gz", broken, gz=True))
    assert file.format == "extxyz" and file.ids[:2] == ["copper", "1"] and len(file.inputs) == 3
    assert file.inputs[2] is None and file.reasons[2]


def test_sdf_molecules_keep_their_hydrogens_coordinates_and_names(tmp_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    mol.SetProp("_Name", "ethanol")
    good = Chem.MolToMolBlock(mol)
    text = good + "$$$$\n" + "broken\n\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n$$$$\n" + good + "$$$$\n"
    for path in (_write(tmp_path / "m.sdf.gz", text, gz=True), _write(tmp_path / "renamed", text)):
        file = read_input_file(path)
        assert (file.format, file.kind, file.ids[0]) == ("sdf", "structure", "ethanol") and len(file.inputs) == 3
        atoms = file.inputs[0]
        assert atoms.get_chemical_formula() == "C2H6O" and not atoms.pbc.any()
        assert abs(atoms.positions - mol.GetConformer().GetPositions()).max() < 1e-3
        assert file.inputs[1] is None and file.reasons[1] and file.inputs[2] is not None


def test_csv_columns_ids_and_empty_cells(tmp_path):
    file = read_input_file(_write(tmp_path / "m.csv.gz", "name,smiles\na,CCO\nb,\nc,c1ccccc1\n", gz=True))
    assert (file.format, file.kind, file.ids) == ("csv", "smiles", ["a", "b", "c"]) and 1 in file.reasons
    formulas = read_input_file(_write(tmp_path / "f.csv", "formula\nNaCl\nFe2O3\n"))
    assert formulas.kind == "composition" and formulas.ids == ["0", "1"]
    with pytest.raises(InputFileError, match="no 'smiles', 'formula' or 'composition' column"):
        read_input_file(_write(tmp_path / "x.csv", "a,b\n1,2\n"))


def test_an_unreadable_file_names_the_formats_tried(tmp_path):
    with pytest.raises(InputFileError, match="cannot read .*junk.json as CSV, Matbench JSON"):
        read_input_file(_write(tmp_path / "junk.json", "{not json"))
    (tmp_path / "binary").write_bytes(b"\x00\xff\xfe\x00" * 10)
    with pytest.raises(InputFileError, match="not a text file"):
        read_input_file(tmp_path / "binary")
    with pytest.raises(InputFileError, match="no such file"):
        read_input_file(tmp_path / "missing.csv")
