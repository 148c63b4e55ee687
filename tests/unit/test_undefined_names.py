"""No module of the project uses a name it never defines: such a slip only
shows when its line runs (a benchmark's last phase once died of a missing
import), so pyflakes reads every file once here."""
from __future__ import annotations

from pathlib import Path

from pyflakes import api as pyflakes_api
from pyflakes import messages
from pyflakes.reporter import Reporter

REPO = Path(__file__).resolve().parents[2]
TREES = ("api", "common", "fastpath", "analysis", "tests")


class _Collect(Reporter):
    def __init__(self):
        self.found: list[str] = []

    def flake(self, message) -> None:
        if isinstance(message, (messages.UndefinedName, messages.UndefinedLocal,
                                messages.UndefinedExport)):
            self.found.append(str(message))

    def unexpectedError(self, filename, msg) -> None:
        self.found.append(f"{filename}: {msg}")

    def syntaxError(self, filename, msg, lineno, offset, text) -> None:
        self.found.append(f"{filename}:{lineno}: {msg}")


def test_no_undefined_names():
    report = _Collect()
    files = [p for tree in TREES for p in sorted((REPO / tree).rglob("*.py"))
             if ".venv" not in p.parts and "build" not in p.parts]
    assert len(files) > 300
    for path in files:
        pyflakes_api.check(path.read_text(), str(path.relative_to(REPO)), report)
    assert not report.found, "\n".join(report.found)
