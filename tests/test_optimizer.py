"""The configured optimizer: each family's original β₂, and `lr_schedule` (constant, cosine over the
epoch budget, or the original CrysToGraph's ×0.1 step)."""

import keras
import pytest
from keras import ops

from keras_chem.training.config import resolve_model_config
from keras_chem.training.fit import compile_model, learning_rate_schedule
from keras_chem.models.registry import get_model_family


def _at(schedule, step):
    return float(ops.convert_to_numpy(schedule(step)))


def test_constant_is_the_plain_rate():
    assert learning_rate_schedule({"learning_rate": 1e-3, "epochs": 10, "lr_schedule": "constant"}, 7) == 1e-3


def test_cosine_decays_to_zero_over_the_epoch_budget():
    schedule = learning_rate_schedule({"learning_rate": 1e-3, "epochs": 10, "lr_schedule": "cosine"}, 7)
    assert _at(schedule, 0) == pytest.approx(1e-3)
    assert _at(schedule, 35) == pytest.approx(5e-4, rel=1e-4)
    assert _at(schedule, 70) == pytest.approx(0.0, abs=1e-9)


def test_step_drops_tenfold_after_a_third_of_the_epochs():
    schedule = learning_rate_schedule({"learning_rate": 1e-3, "epochs": 9, "lr_schedule": "step"}, 5)
    assert _at(schedule, 15) == pytest.approx(1e-3)
    assert _at(schedule, 16) == pytest.approx(1e-4)


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown lr_schedule 'warmup'; choose one of constant, cosine, step"):
        resolve_model_config(get_model_family("elembert"), {"lr_schedule": "warmup"})


@pytest.mark.parametrize("family, beta_2", [("roost", 0.999), ("crystograph", 0.99), ("elembert", 0.999)])
def test_each_family_trains_with_the_beta_2_of_its_original(family, beta_2):
    config = resolve_model_config(get_model_family(family), {})
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    compile_model(model, "mae", config)
    assert config["beta_2"] == beta_2
    assert model.optimizer.beta_2 == pytest.approx(beta_2)


def test_beta_2_is_a_flag_and_is_checked():
    assert resolve_model_config(get_model_family("roost"), {"beta_2": "0.98"})["beta_2"] == 0.98
    with pytest.raises(ValueError, match=r"beta_2 must be in \[0, 1\), got 1.5"):
        resolve_model_config(get_model_family("roost"), {"beta_2": 1.5})
