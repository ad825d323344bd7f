"""The import contract of DESIGN.md (pyproject ``[tool.importlinter]``): layers import downwards only."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contract_is_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("lint-imports not installed: `pip install -e .[test]` installs import-linter")
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_contract_lists_no_exceptions():
    text = (ROOT / "pyproject.toml").read_text()
    assert "[tool.importlinter]" in text and "ignore_imports" not in text
