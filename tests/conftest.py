import os
from pathlib import Path

import pytest

os.environ.setdefault("KCHEM_PROGRESS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    data_dir = os.environ.get("KCHEM_DATA_DIR")
    if not data_dir or not Path(data_dir).is_dir():
        raise pytest.UsageError(
            "set KCHEM_DATA_DIR to the benchmark data folder (`make test` sets it to ../shared/data)"
        )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(os.environ["KCHEM_DATA_DIR"])


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test session gets its own feature/download cache, never the user's."""
    cache = tmp_path_factory.getbasetemp() / "kchem-cache"
    monkeypatch.setenv("KCHEM_CACHE_DIR", str(cache))
    yield
