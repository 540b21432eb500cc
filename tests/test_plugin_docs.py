"""docs/plugins.md cannot drift: its file snippets are the example plugin's code, and its other snippets run.

* A Python snippet whose first line is ``# <path>`` must be, below that line, exactly the file at that path in
  ``plugins/example-sepia``.
* Every other Python snippet is run as written, in a fresh namespace; the ``test_*`` functions it defines are
  called.
* A TOML snippet must be a part of the example's ``pyproject.toml``: every table and value it shows is there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "plugins" / "example-sepia"

_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)
_FILE_LINE = re.compile(r"# (\S+\.(?:py|toml))\n")


def snippets(language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(DOC.read_text(encoding="utf-8")) if lang == language]


def file_snippets() -> list[tuple[str, str]]:
    found = []
    for body in snippets("python"):
        match = _FILE_LINE.match(body)
        if match:
            found.append((match[1], body[match.end():]))
    return found


def runnable_snippets() -> list[str]:
    return [body for body in snippets("python") if not _FILE_LINE.match(body)]


def test_the_page_has_the_snippets_these_tests_check() -> None:
    # So that a change to the page's layout cannot make the tests below pass by finding nothing.
    assert {path for path, _ in file_snippets()} == {
        "src/remaster_example_sepia/plugin.py", "src/remaster_example_sepia/stage.py"}
    assert len(runnable_snippets()) >= 3 and snippets("toml")


@pytest.mark.parametrize(("path", "code"), file_snippets(), ids=[path for path, _ in file_snippets()])
def test_file_snippet_is_the_example_code(path: str, code: str) -> None:
    assert code == (EXAMPLE / path).read_text(encoding="utf-8"), (
        f"docs/plugins.md shows {path} differently from plugins/example-sepia/{path}; make them the same")


@pytest.mark.parametrize("code", runnable_snippets(), ids=lambda code: code.splitlines()[0][:40])
def test_snippet_runs(code: str) -> None:
    namespace: dict[str, Any] = {"__name__": "plugins_md_snippet"}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - the project's own documentation
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            value()


def _is_part_of(part: Any, whole: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(key in whole and _is_part_of(value, whole[key])
                                               for key, value in part.items())
    return part == whole


@pytest.mark.parametrize("text", snippets("toml"))
def test_toml_snippet_is_part_of_the_example_pyproject(text: str) -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    pyproject = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))
    assert _is_part_of(tomllib.loads(text), pyproject)
