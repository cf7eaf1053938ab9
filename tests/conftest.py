import os
from pathlib import Path

import pytest

os.environ.setdefault("KCHEM_PROGRESS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The many small runs of the suite repeat a few configurations in fresh processes: let JAX's
# persistent cache keep every program (keras-chem keeps those over 0.2 s), so repeats load them.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# The tests train a few steps on tiny data, so compiling is most of their time: XLA's backend
# optimisation level 0 compiles 3-4x faster under JAX, and without LLVM's expensive passes
# TensorFlow's XLA compiles take a fifth less, into slower machine code of the same program (set here
# for the test processes and the `kchem` processes they start; users and bench/ keep XLA's defaults).
for flag in ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true"):
    if flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def pytest_configure(config):
    data_dir = os.environ.get("KCHEM_DATA_DIR")
    if not data_dir or not Path(data_dir).is_dir():
        raise pytest.UsageError(
            "set KCHEM_DATA_DIR to the benchmark data folder (`make test` sets it to ../shared/data)"
        )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(os.environ["KCHEM_DATA_DIR"])


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Every test session gets its own feature/download/compile cache, never the user's (set before any
    other fixture, so the `kchem` processes the fixtures start use it too); the pytest-xdist workers of
    one session share it (their temporary folders sit side by side in the session's)."""
    previous = os.environ.get("KCHEM_CACHE_DIR")
    session_temp = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        session_temp = session_temp.parent
    os.environ["KCHEM_CACHE_DIR"] = str(session_temp / "kchem-cache")
    yield
    if previous is None:
        os.environ.pop("KCHEM_CACHE_DIR", None)
    else:
        os.environ["KCHEM_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def bbbp_run(tmp_path_factory) -> Path:
    """A finished 2-fold elEmBERT V0 run on the first 120 BBBP rows (`runs.train_args()`), shared by
    the tests that only read it or compare with it."""
    from runs import kchem, train_args

    out = tmp_path_factory.mktemp("bbbp") / "run"
    kchem(*train_args(out))
    return out
