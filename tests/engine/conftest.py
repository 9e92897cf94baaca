"""The `tiny` fixture: tests/engine/tiny.py loaded by path (tests have no package)."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TINY = Path(__file__).with_name("tiny.py")


def _load_tiny() -> ModuleType:
    if "engine_tiny" not in sys.modules:  # registered so DataLoader workers can unpickle it
        spec = importlib.util.spec_from_file_location("engine_tiny", TINY)
        module = importlib.util.module_from_spec(spec)
        sys.modules["engine_tiny"] = module
        spec.loader.exec_module(module)
    return sys.modules["engine_tiny"]


@pytest.fixture(scope="session")
def tiny() -> ModuleType:
    return _load_tiny()
