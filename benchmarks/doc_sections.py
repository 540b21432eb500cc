"""The marked sections of docs/benchmarks.md that the benchmark scripts write: each replaces only its own."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(begin: str, end: str, text: str, doc: Path = DOC) -> None:
    """Put ``text`` between the markers ``begin`` and ``end`` in ``doc``, replacing what was there (or at the end)."""
    current = doc.read_text()
    section = f"{begin}\n{text}\n{end}"
    if begin in current:
        head, _, rest = current.partition(begin)
        current = head + section + rest.partition(end)[2]
    else:
        current = current.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(current)


def publish(begin: str, end: str, text: str, write: bool) -> None:
    """Print a script's section, and with ``write`` put it in docs/benchmarks.md (:func:`write_section`)."""
    print(text)
    if write:
        write_section(begin, end, text)
