"""Sum up a bad-input corpus report (the JSON lines ``tests/test_bad_inputs.py`` appends).

Usage::

    CELLIST_CORPUS_REPORT=/tmp/after.jsonl python -m pytest tests/test_bad_inputs.py -q
    python tests/corpus_report.py /tmp/after.jsonl

Prints the counts issue 16 asks for: cases, clear one-line messages, tracebacks, non-zero exits,
writes outside ``--out``, code run from a pickle, reader cases declined, overwrites.
"""

from __future__ import annotations

import json
import sys
from collections import Counter


def _unportable(file_name: str) -> bool:
    from test_bad_inputs import _portable

    return not _portable(file_name)


def summarise(lines: list[str]) -> dict[str, int]:
    """Counts over the report's records (the last record of each case id wins)."""
    records = {}
    for line in lines:
        if line.strip():
            record = json.loads(line)
            records[(record["kind"], record["id"])] = record
    cli = [r for r in records.values() if r["kind"] == "cli"]
    reader = [r for r in records.values() if r["kind"] == "reader"]
    names = [r for r in records.values() if r["kind"] == "names"]
    overwrite = [r for r in records.values() if r["kind"] == "overwrite"]
    counts = Counter(
        cli_cases=len(cli),
        cli_clear_one_line=sum(r["clear"] and not r["traceback"] for r in cli),
        cli_tracebacks=sum(r["traceback"] for r in cli),
        cli_nonzero_exit=sum(r["code"] not in (0, None) for r in cli),
        cli_exit_0=sum(r["code"] == 0 for r in cli),
        cli_writes_outside_out=sum(bool(r["outside"]) for r in cli),
        pickle_code_run=sum(r["pwned"] for r in cli),
        reader_cases=len(reader),
        reader_declined=sum(not r["accepted"] and not r["raised"] for r in reader),
        reader_raised=sum(bool(r["raised"]) for r in reader),
        name_cases=len(names),
        name_writes_outside_out=sum(bool(r["outside"]) for r in names),
        name_unportable_files=sum(
            bool(r.get("unportable", [w for w in r["written"] if _unportable(w)])) for r in names
        ),
        overwrite_cases=len(overwrite),
        overwrites=sum(max(0, r["inputs"] - r["outputs"]) for r in overwrite),
    )
    return dict(counts)


def main(argv: list[str]) -> int:
    for path in argv:
        with open(path, encoding="utf-8") as file:
            counts = summarise(file.readlines())
        print(path)
        for key, value in counts.items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
