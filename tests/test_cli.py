"""`kchem datasets`, help and error paths of the command line (in-process, no Keras needed)."""

import pytest
from typer.testing import CliRunner

from keras_chem.cli.app import app

pytestmark = pytest.mark.backend_independent

runner = CliRunner()


def test_datasets_list_shows_every_card_and_local_availability():
    from keras_chem.data.registry import list_cards

    result = runner.invoke(app, ["datasets", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for card in list_cards():
        assert card.name in result.output
    assert "yes" in result.output


def test_datasets_info_shows_the_card():
    result = runner.invoke(app, ["datasets", "info", "tox21"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "a8f5b4744c25cad36a06f28dd40e789541d6bd34bab93d32626393f974110941" in result.output
    assert "NR-AR" in result.output and "scaffold" in result.output


def test_unknown_dataset_suggests_close_names():
    result = runner.invoke(app, ["datasets", "info", "tox2"])
    assert result.exit_code == 2
    assert "tox21" in result.output


def test_train_without_dataset_is_a_clear_error():
    result = runner.invoke(app, ["train", "elembert"])
    assert result.exit_code == 2
    assert "--dataset" in result.output


def test_unknown_model_lists_the_registered_ones():
    result = runner.invoke(app, ["train", "nosuchmodel", "--dataset", "bbbp"])
    assert result.exit_code == 2
    assert "elembert" in result.output


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "predict", "export", "datasets"):
        assert command in result.output
