"""`kchem predict` on every input format `train` reads: one row per input in input order, with its
id and a reason for rows that could not be featurized; an unreadable file is a one-line error."""

import gzip
import json

import ase.build
import ase.io
import pandas as pd
import pytest

from runs import kchem

pytestmark = pytest.mark.runner_logic


@pytest.fixture(scope="module")
def run_dir(bbbp_run):
    """elEmBERT V0 tokens: the run takes structures and formulas as well as SMILES."""
    return bbbp_run


def _predict(run_dir, source, *extra, check=True):
    out = source.with_name("out.csv")
    result = kchem("predict", str(run_dir), "--input", str(source), "--output", str(out), *extra, check=check)
    return result, (pd.read_csv(out, keep_default_na=False, dtype=str) if check else None)


def test_a_matbench_file_gives_one_row_per_structure_with_its_index(run_dir, tmp_path, data_dir):
    source = data_dir / "matbench_phonons" / "matbench_phonons.json.gz"
    blob = json.loads(gzip.decompress(source.read_bytes()))
    blob = {"index": blob["index"][:5], "columns": blob["columns"], "data": blob["data"][:5]}
    blob["data"][2][0]["sites"][0]["species"][0]["element"] = "Xq"  # one broken structure
    mixed = tmp_path / "phonons.json.gz"
    mixed.write_bytes(gzip.compress(json.dumps(blob).encode()))
    result, frame = _predict(run_dir, mixed)
    assert list(frame["id"]) == [str(i) for i in blob["index"]]
    assert (frame["reason"] != "").tolist() == [False, False, True, False, False]
    assert frame["p_np"][2] == "" and all(frame["p_np"][i] for i in (0, 1, 3, 4))
    assert "4 predicted, 1 could not be featurized" in result.stdout
    plain = tmp_path / "phonons.json"
    plain.write_text(json.dumps(blob))
    assert _predict(run_dir, plain)[1].equals(frame)


def test_structure_files_and_csv_through_python(run_dir, tmp_path):
    import keras_chem

    frames = [ase.build.bulk("Cu", "fcc", a=3.6), ase.build.bulk("NaCl", "rocksalt", a=5.64)]
    frames[0].info["name"] = "copper"
    ase.io.write(tmp_path / "crystals.extxyz", frames, format="extxyz")
    ase.io.write(tmp_path / "CONTCAR", frames[1], format="vasp")
    ase.io.write(tmp_path / "salt.cif", frames[1], format="cif")
    (tmp_path / "mixed.csv").write_text("material,formula\nm1,NaCl\nm2,not a formula\nm3,CuO\n")
    assert list(keras_chem.predict(run_dir, tmp_path / "crystals.extxyz")["id"]) == ["copper", "1"]
    assert len(keras_chem.predict(run_dir, tmp_path / "CONTCAR")) == 1
    assert (keras_chem.predict(run_dir, tmp_path / "salt.cif")["reason"] == "").all()
    frame = keras_chem.predict(run_dir, tmp_path / "mixed.csv")
    assert list(frame["material"]) == ["m1", "m2", "m3"] and (frame["reason"] != "").tolist() == [False, True, False]
    assert frame["p_np"].isna().tolist() == [False, True, False]


def test_an_unreadable_file_is_one_clear_error(run_dir, tmp_path):
    junk = tmp_path / "junk.json.gz"
    junk.write_bytes(gzip.compress(b"{this is not json"))
    result, _ = _predict(run_dir, junk, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot read" in result.stderr and "Matbench JSON" in result.stderr


def test_datasets_list_keeps_full_names_when_piped():
    from keras_chem.data.registry import list_cards

    listed = kchem("datasets", "list").stdout
    names = {line.split("\t")[0] for line in listed.splitlines()[1:]}
    assert names == {card.name for card in list_cards()}
    assert "matbench_phonons" in names
