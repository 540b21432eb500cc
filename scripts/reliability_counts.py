"""Run the reliability tests and print the counts table of docs/reliability.md.

    .venv/bin/python scripts/reliability_counts.py            # print the table
    .venv/bin/python scripts/reliability_counts.py --write    # also replace it in docs/reliability.md

Each case of tests/test_corpus.py, tests/test_batch.py and tests/test_hostile_*.py records itself (kind, inputs and outputs
checked, files lost) in a tally file while it runs; the weights tests that inject faults (a cut
download, a server ignoring Range, a wrong sha256, a malicious pickle, damaged files) are counted
from pytest's JUnit report, one per passing test. Nothing here is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- counts:begin -->", "<!-- counts:end -->"

#: Tests of tests/test_weights.py that inject a fault, each counted once when it passes.
WEIGHTS_FAULTS = [
    "test_fetch_resumes_an_interrupted_download",
    "test_a_download_cut_short_keeps_the_part_and_the_next_fetch_resumes",
    "test_server_ignoring_range_restarts_from_zero",
    "test_complete_part_refused_with_416_restarts",
    "test_checksum_mismatch_quarantines_and_is_never_loadable",
    "test_network_errors_name_the_url_and_the_manual_route",
    "test_trust_on_first_use_pins_and_catches_later_tampering",
    "test_unsafe_pickle_is_refused_without_running_it",
    "test_damaged_files_are_weights_errors_not_crashes",
]


def run_tests(tally: Path, junit: Path) -> int:
    env = dict(os.environ, REMASTER_RELIABILITY_TALLY=str(tally))
    selection = ["tests/test_corpus.py", "tests/test_batch.py", "tests/test_hostile_inputs.py",
                 "tests/test_hostile_outputs.py", "tests/test_hostile_models.py", "tests/test_hostile_downloads.py",
                 *(f"tests/test_weights.py::{t}" for t in WEIGHTS_FAULTS)]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *selection]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def weights_faults_passed(junit: Path) -> int:
    passed = 0
    for case in ElementTree.parse(junit).iter("testcase"):
        name = re.sub(r"\[.*\]$", "", case.get("name", ""))
        if name in WEIGHTS_FAULTS and not any(child.tag in ("failure", "error", "skipped") for child in case):
            passed += 1
    return passed


def table(records: list[dict], weights_faults: int, load: str) -> str:
    kinds = Counter(r["kind"] for r in records)
    checked = [r for r in records if "inputs" in r]
    soak = {r["files"]: r for r in records if r["kind"] == "soak figures"}
    soak_bad = sum(r["bad"] for r in soak.values())
    rows = [
        ("bad-input cases tried (corpus files and settings; each refused or handled with a clear message)",
         kinds["bad input"]),
        ("unusual but valid inputs processed and checked pixel by pixel", kinds["good input"]),
        ("faults injected in remaster's own tests (plugins, NaN, disk full, Ctrl-C, SIGINT, malicious .pth)",
         kinds["fault"]),
        ("faults injected in the weights tests (cut/resumed downloads, bad sha256, unsafe pickle, damaged files)",
         weights_faults),
        ("bad files fed to the soak runs (among " + " + ".join(str(n) for n in sorted(soak)) + " files)", soak_bad),
        ("input files checked unchanged after a case", sum(r["inputs"] for r in checked)),
        ("finished outputs checked complete after a case", sum(r["outputs"] for r in checked)),
        ("**files lost** (input changed or gone, finished output missing or partial)",
         sum(r["lost"] for r in records)),
    ]
    lines = ["| what | count |", "|---|---:|"] + [f"| {what} | {count} |" for what, count in rows]
    for count, r in sorted(soak.items()):
        lines.append(f"| soak: {count} files ({r['bad']} bad), wall time / peak RSS of the remaster process "
                     f"| {r['seconds']} s / {r['peak_rss_mib']} MiB |")
    machine = f"{cpu_model()} ({platform.machine()}, {os.cpu_count()} CPUs), Python {platform.python_version()}, {platform.system()}"
    lines += ["", f"Produced by `.venv/bin/python scripts/reliability_counts.py --write` on {machine} "
                  f"(load average before the run: {load})."]
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"replace the table in {DOC.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        tally, junit = Path(folder) / "tally.jsonl", Path(folder) / "junit.xml"
        load = load_average()
        code = run_tests(tally, junit)
        if code != 0:
            print(f"the reliability tests failed (exit {code}); no table written", file=sys.stderr)
            return code
        records = [json.loads(line) for line in tally.read_text().splitlines()]
        text = table(records, weights_faults_passed(junit), load)
    print(text)
    if args.write:
        doc = DOC.read_text()
        start, end = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        DOC.write_text(doc[:start] + "\n" + text + "\n" + doc[end:])
        print(f"updated {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
