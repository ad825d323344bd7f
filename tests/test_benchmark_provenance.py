"""Every results JSON says where it came from (issue 15's provenance rule), and every JSON the docs cite exists.

``benchmarks/results/*.json`` must carry the exact command, a clean commit, and how every
hyper-parameter was chosen. Files written before that rule and not rerun live in
``benchmarks/results/legacy/``, each listed with its reason in ``legacy/README.md``; BENCHMARKS.md labels
any number it still quotes from them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LEGACY = RESULTS / "legacy"


def provenance_problems(doc: dict) -> list[str]:
    """What a results document lacks: ``[]`` when it has a command, a clean 40-hex commit and a non-empty
    ``hyperparameters`` record."""
    problems = []
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    if not isinstance(doc.get("command"), str) or not doc["command"].strip():
        problems.append("no command")
    git = doc.get("git")
    if not isinstance(git, dict) or not re.fullmatch(r"[0-9a-f]{40}", str(git.get("commit"))):
        problems.append("no commit")
    elif git.get("dirty") is not False:
        problems.append(f"dirty tree ({git.get('dirty')})")
    if not doc.get("hyperparameters"):
        problems.append("no hyperparameters record")
    return problems


def test_provenance_check_rejects_what_it_should():
    good = {"command": "python benchmarks/bench_x.py", "git": {"commit": "a" * 40, "dirty": False},
            "hyperparameters": {"how_chosen": "default, not tuned"}}
    assert provenance_problems(good) == []
    assert provenance_problems({**good, "git": {"commit": "a" * 40, "dirty": True}}) == ["dirty tree (True)"]
    assert provenance_problems({**good, "git": {"commit": None, "dirty": None}}) == ["no commit"]
    assert provenance_problems({k: v for k, v in good.items() if k != "command"}) == ["no command"]
    assert provenance_problems({**good, "hyperparameters": {}}) == ["no hyperparameters record"]


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_results_json_has_provenance(path):
    problems = provenance_problems(json.loads(path.read_text()))
    assert not problems, (f"{path.relative_to(ROOT)}: {', '.join(problems)} — rerun it from a clean commit "
                          f"with a script that records them, or move it to results/legacy/ with its reason")


def test_every_legacy_json_is_explained():
    listed = LEGACY.joinpath("README.md").read_text()
    unexplained = [p.name for p in LEGACY.glob("*.json") if f"`{p.name}`" not in listed]
    assert not unexplained, f"benchmarks/results/legacy/README.md does not explain {unexplained}"


@pytest.mark.parametrize("doc", ["BENCHMARKS.md", "README.md"])
def test_cited_results_exist(doc):
    """A number quoted with ``results/NAME.json`` has that JSON (a moved file is cited at its new path)."""
    cited = set(re.findall(r"results/([A-Za-z0-9_.\-/]+?\.json)", (ROOT / doc).read_text()))
    assert cited, f"{doc} cites no results JSON: the pattern no longer matches how it cites them"
    missing = sorted(c for c in cited if not (RESULTS / c).is_file())
    assert not missing, f"{doc} cites results that do not exist: {missing}"
