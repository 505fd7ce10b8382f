"""The README's Python examples run verbatim (each block marked ``<!-- python-example ... -->``)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE = re.compile(r"<!-- python-example[^>]*-->\s*```python\n(.*?)```", re.S)


def examples() -> list[str]:
    return EXAMPLE.findall(README.read_text())


def test_readme_has_a_python_example():
    assert examples(), "README.md has no block marked <!-- python-example -->"


@pytest.mark.parametrize("index", range(len(examples())))
def test_readme_python_example_runs(index, tmp_path):
    # A fresh interpreter in an empty directory: the example may use only the installed package
    # and the files it writes itself.
    code = examples()[index]
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(64, 64) float32" in done.stdout, done.stdout
    assert (tmp_path / "example_out" / "metrics.json").is_file()
