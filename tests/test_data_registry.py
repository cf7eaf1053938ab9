"""Dataset cards and the offline-first file lookup (keras_chem.data.registry / fetch)."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.error
from pathlib import Path

import pytest

from keras_chem.data import fetch
from keras_chem.data.fetch import DataFileError, data_dirs, is_available, locate
from keras_chem.data.registry import CardError, get_card, list_cards, parse_card

pytestmark = pytest.mark.backend_independent

EXPECTED = {
    "tox21", "bbbp", "bace", "clintox", "sider", "hiv", "toxcast", "muv", "esol", "freesolv",
    "lipophilicity", "qm8", "qm7", "matbench_phonons", "matbench_dielectric", "matbench_expt_gap",
    "matbench_expt_is_metal", "matbench_glass", "matbench_steels", "matbench_jdft2d", "matbench_log_gvrh",
    "matbench_log_kvrh", "matbench_mp_e_form", "matbench_mp_gap", "matbench_mp_is_metal",
    "matbench_perovskites", "matbench_phonons_composition", "matbench_dielectric_composition",
    "cegann_dimensionality", "cegann_spacegroup", "roost_expt_non_metals", "roost_mp_non_metals",
    "roost_oqmd_test", "qm9_hlg", "qm9_hc", "qm9_ip", "qm9_potential", "qm9_first500_u0", "qm9_first20",
    "matbench_splits", "cgcnn_atom_init", "element_embeddings",
}

SHARED = os.environ.get("KCHEM_DATA_DIR", "")
needs_data = pytest.mark.skipif(not SHARED, reason="KCHEM_DATA_DIR not set")

CARD_TEXT = """
name = "toy"
description = "toy"
input = "smiles"
format = "csv"
task = "regression"
targets = ["y"]
input_column = "smiles"
id_column = ""
metric = "mae"
split = "random"
license = "MIT"
source = "here"
citation = "none"

[[files]]
path = "toy/toy.csv"
sha256 = "{sha}"
size = 1
url = "https://example.invalid/toy.csv"
url_sha256 = "{sha}"
transform = "none"
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def empty_dirs(tmp_path, monkeypatch):
    """Empty data and cache dirs, and a download function that behaves as offline."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("KCHEM_DATA_DIR", str(data))
    monkeypatch.setenv("KCHEM_CACHE_DIR", str(cache))

    def offline(url, timeout=30.0):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(fetch, "_download", offline)
    return data, cache


def test_all_cards_parse_with_expected_names():
    cards = list_cards()
    names = [c.name for c in cards]
    assert names == sorted(names)
    assert set(names) == EXPECTED
    for card in cards:
        assert card.files
        if card.input != "table":
            assert card.targets and card.input_column
        if card.split == "matbench":
            assert card.matbench_task.startswith("matbench_")
        for spec in card.files:
            assert spec.transform == "manual" or spec.url.startswith("https://")


@needs_data
def test_every_file_is_present_with_the_card_hash():
    root = Path(SHARED.split(os.pathsep)[0])
    for card in list_cards():
        for spec in card.files:
            data = (root / spec.path).read_bytes()
            assert len(data) == spec.size, spec.path
            assert _sha(data) == spec.sha256, spec.path
            if spec.transform == "gzip":
                assert _sha(gzip.decompress(data)) == spec.url_sha256, spec.path
            if spec.transform == "none" and card.name != "matbench_dielectric":
                assert spec.url_sha256 == spec.sha256, spec.path
        assert is_available(card), card.name


def test_unknown_name_lists_close_matches():
    with pytest.raises(KeyError, match="tox21"):
        get_card("tox2l")
    with pytest.raises(KeyError, match="matbench_phonons"):
        get_card("matbench_phonon")


def test_card_validation_names_the_file():
    good = CARD_TEXT.format(sha="0" * 64)
    assert parse_card(good, "toy.toml").targets == ("y",)
    with pytest.raises(CardError, match=r"toy\.toml.*unknown field.*colour"):
        parse_card(good.replace('split = "random"', 'split = "random"\ncolour = "red"'), "toy.toml")
    with pytest.raises(CardError, match=r"toy\.toml.*missing field.*metric"):
        parse_card(good.replace('metric = "mae"\n', ""), "toy.toml")
    with pytest.raises(CardError, match=r"toy\.toml.*task"):
        parse_card(good.replace('task = "regression"', 'task = "ranking"'), "toy.toml")
    with pytest.raises(CardError, match=r"toy\.toml.*sha256"):
        parse_card(good.replace("0" * 64, "abc", 1), "toy.toml")


def test_data_dirs_order(monkeypatch, tmp_path):
    monkeypatch.setenv("KCHEM_DATA_DIR", str(tmp_path / "a"))
    monkeypatch.setenv("KCHEM_CACHE_DIR", str(tmp_path / "c"))
    assert data_dirs() == [tmp_path / "a", tmp_path / "c"]
    monkeypatch.delenv("KCHEM_DATA_DIR")
    monkeypatch.delenv("KCHEM_CACHE_DIR")
    assert data_dirs() == [Path.home() / ".cache" / "keras_chem"]


def test_missing_file_offline_says_where_to_put_it(empty_dirs):
    data, cache = empty_dirs
    card = get_card("tox21")
    with pytest.raises(DataFileError) as err:
        locate(card)
    msg = str(err.value)
    assert "\n" not in msg
    assert "tox21/tox21.csv.gz not found" in msg and f"$KCHEM_DATA_DIR={data}" in msg and str(cache) in msg
    assert card.files[0].url in msg
    assert f"save it as {data / 'tox21/tox21.csv.gz'}" in msg
    assert not is_available(card)


def test_manual_file_is_never_downloaded(empty_dirs, monkeypatch):
    monkeypatch.setattr(fetch, "_download", lambda *a, **k: pytest.fail("must not download"))
    card = get_card("matbench_expt_gap")
    with pytest.raises(DataFileError, match="cannot be downloaded ready-made.*scripts/artifacts/matbench_expt_gap"):
        locate(card)
    with pytest.raises(DataFileError, match="downloads disabled"):
        locate(get_card("tox21"), download=False)


@needs_data
def test_download_is_checked_gzipped_and_cached(empty_dirs, monkeypatch):
    _, cache = empty_dirs
    card = get_card("bace")
    content = gzip.decompress((Path(SHARED) / card.files[0].path).read_bytes())
    monkeypatch.setattr(fetch, "_download", lambda url, timeout=30.0: content)
    path = locate(card)
    assert path == cache / "bace/bace.csv.gz"
    assert gzip.decompress(path.read_bytes()) == content
    monkeypatch.setattr(fetch, "_download", lambda url, timeout=30.0: content + b"x")
    with pytest.raises(DataFileError, match="downloaded bytes have sha256"):
        locate(get_card("bbbp"))
    assert not (cache / "bbbp/bbbp.csv.gz").exists()


@needs_data
def test_corrupt_file_is_named_with_both_hashes(empty_dirs):
    data, _ = empty_dirs
    spec = get_card("tox21").files[0]
    blob = bytearray((Path(SHARED) / spec.path).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    bad = data / spec.path
    bad.parent.mkdir(parents=True)
    bad.write_bytes(bytes(blob))
    with pytest.raises(DataFileError) as err:
        locate(get_card("tox21"))
    msg = str(err.value)
    assert str(bad) in msg and spec.sha256 in msg and _sha(bytes(blob)) in msg


@needs_data
def test_regzipped_file_with_same_content_is_accepted(empty_dirs):
    _, cache = empty_dirs
    spec = get_card("tox21").files[0]
    content = gzip.decompress((Path(SHARED) / spec.path).read_bytes())
    other = gzip.compress(content, compresslevel=1, mtime=1234567)
    assert _sha(other) != spec.sha256
    (cache / "tox21").mkdir(parents=True)
    (cache / spec.path).write_bytes(other)
    assert locate(get_card("tox21")) == cache / spec.path


@needs_data
def test_verification_is_cached_per_process(monkeypatch, tmp_path):
    src = Path(SHARED) / "esol/delaney.csv.gz"
    (tmp_path / "esol").mkdir()
    shutil.copy(src, tmp_path / "esol/delaney.csv.gz")
    monkeypatch.setenv("KCHEM_DATA_DIR", str(tmp_path))
    calls = []
    real = fetch._sha256_file
    monkeypatch.setattr(fetch, "_sha256_file", lambda p: calls.append(p) or real(p))
    card = get_card("esol")
    assert locate(card) == locate(card) == tmp_path / "esol/delaney.csv.gz"
    assert len(calls) == 1
