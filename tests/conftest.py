import contextlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

# Two cores on CI: keep torch from oversubscribing them.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (the ../shared checkout beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def load_script():
    """Import ``scripts/<name>.py`` as a module (the scripts are not a package)."""

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def keep_threads():
    """A context manager restoring torch's thread count (scripts set their own)."""

    @contextlib.contextmanager
    def keep():
        threads = torch.get_num_threads()
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    return keep


@pytest.fixture
def flaky_zero_filled():
    """A zero-filled reconstructor that raises ``RuntimeError("boom")`` from its third slice on:
    with two slices per volume, the second volume fails half-way."""
    from fastmri_untrained.baselines import ZeroFilled

    calls = {"n": 0}

    def flaky(sample):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("boom")
        return ZeroFilled()(sample)

    return flaky
