#!/usr/bin/env python3
"""Sums the results of several test runners from their reports.

  test_summary.py --run NAME STATUS [REPORT...] [--run ...]

NAME is a label (say `swift test` or `pytest Tests/S3fs`), STATUS the runner's exit status,
REPORT its reports: JUnit XML files (`*.xml`: pytest, Swift Testing) or XCTest console output
(any other file; `swift test` writes no XCTest XML unless run with --parallel). Missing files are
ignored. A runner counts
as failed on top of its failing tests when it exited non-zero without reporting a failure
(crash, build error, timeout), or when it ran no test at all. Prints one line per runner, each
skipped test with its reason, and last the line `N passed, N failed, N skipped`. Exits 1 when
anything failed, else 0.
"""
import argparse
import os
import re
import sys
import xml.etree.ElementTree as ElementTree

XCTEST_CASE = re.compile(r"^Test Case '(?P<name>.+)' (?P<outcome>passed|failed|skipped) \(")


def junit_outcomes(path):
    """(name, outcome, reason) of every test case of a JUnit XML report."""
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            yield name, "failed", ""
        elif case.find("skipped") is not None:
            yield name, "skipped", case.find("skipped").get("message", "")
        else:
            yield name, "passed", ""


def xctest_outcomes(path):
    """(name, outcome, reason) of every `Test Case '…' passed|failed|skipped (…)` line of XCTest output."""
    with open(path, errors="replace") as log:
        for line in log:
            match = XCTEST_CASE.match(line)
            if match:
                yield match["name"], match["outcome"], ""


def count(report_paths):
    passed, failed, skipped = 0, 0, []
    for path in report_paths:
        if not os.path.exists(path):
            continue
        outcomes = junit_outcomes(path) if path.endswith(".xml") else xctest_outcomes(path)
        for name, outcome, reason in outcomes:
            if outcome == "failed":
                failed += 1
            elif outcome == "skipped":
                skipped.append((name, reason))
            else:
                passed += 1
    return passed, failed, skipped


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", nargs="+", action="append", required=True, metavar="NAME STATUS REPORT")
    runs = parser.parse_args().run
    total_passed = total_failed = total_skipped = 0
    for run in runs:
        if len(run) < 2 or not run[1].lstrip("-").isdigit():
            parser.error(f"--run needs NAME STATUS [REPORT...], got {run}")
        name, status, report_paths = run[0], int(run[1]), run[2:]
        passed, failed, skipped = count(report_paths)
        problem = None
        if status == 124:
            problem = "timed out"
        elif passed + failed + len(skipped) == 0:
            problem = f"ran no tests, exit status {status}"
        elif status != 0 and failed == 0:
            problem = f"exited with status {status} without reporting a failing test"
        if problem is not None:
            failed += 1
        note = f" ({problem}; counted as one failure)" if problem else ""
        print(f"runner {name}: passed {passed}, failed {failed}, skipped {len(skipped)}{note}")
        for test, reason in skipped:
            print(f"  skipped {test}: {reason}")
        total_passed += passed
        total_failed += failed
        total_skipped += len(skipped)
    print(f"{total_passed} passed, {total_failed} failed, {total_skipped} skipped")
    sys.exit(1 if total_failed else 0)


if __name__ == "__main__":
    main()
