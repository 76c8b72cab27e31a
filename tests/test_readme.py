"""The README's Python code blocks run as written (each in a fresh interpreter), so the examples a
user copies cannot rot; every block prints what it computes, which is checked for being finite."""
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import run_python

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3, "the README's Python examples were not found"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index):
    code = BLOCKS[index]
    assert not re.search(r"^\s*\.\.\.\s*(#.*)?$", code, flags=re.M), \
        f"README Python block {index} elides code: it must run as written"
    r = run_python(code, timeout=600)
    assert r.returncode == 0, f"README Python block {index} failed:\n{code}\n{r.stderr[-3000:]}"
    printed = r.stdout.strip()
    assert printed, f"README Python block {index} printed nothing"
    numbers = [float(v) for v in re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", printed)]
    assert all(np.isfinite(numbers)), printed
