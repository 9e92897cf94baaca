"""The `tiny` fixture: tests/engine/tiny.py, loaded by path."""

from pathlib import Path
from types import ModuleType

import pytest

TINY = Path(__file__).with_name("tiny.py")


@pytest.fixture(scope="session")
def tiny(load_by_path) -> ModuleType:
    return load_by_path("engine_tiny", TINY)
