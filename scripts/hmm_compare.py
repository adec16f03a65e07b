#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Compare the kernel's hmm-tests run against test_hmm with its run against
rsva, case by case.

    scripts/hmm_compare.py DIR|USER_LOG

prints the table of every case (test_hmm, rsva, the comparison) and the
counts of both runs. scripts/verdict.py calls compare() on the user log of
a VM run and counts what it returns instead of the two runs themselves.

vm/check-plan.sh runs tools/testing/selftests/mm/hmm-tests.c twice in one
boot, framed by "=== RSVA-RAW hmm-tests@test_hmm BEGIN" / "END rc=<n>" and
the same with "@rsva" (vm/tap.sh run_raw). Each case gives one result:

- "hmm-tests <case>: rsva as test_hmm": passes when the case passes on
  test_hmm and on rsva; fails when it passes on test_hmm and not on rsva,
  when it fails on test_hmm itself, or when a run has no result for it;
  is a skip when test_hmm skipped it (with test_hmm's reason) and rsva
  skipped it too or passed it (then there is nothing to compare with); a
  case test_hmm skipped and rsva failed is a failure.

and each run one more: "hmm-tests@LABEL ran to the end" (its END marker,
as many results as its plan, an exit status of 0 unless a case failed).
"""

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

RAW = re.compile(r"^=== RSVA-RAW (?P<bin>[^@\s]+)@(?P<label>\S+) "
                 r"(?:(?P<begin>BEGIN)|END rc=(?P<rc>-?\d+))")
RESULT = re.compile(r"^(?P<not>not )?ok \d+ (?P<name>\S+)(?:\s+#\s*(?P<directive>.*))?$")
RUN = re.compile(r"^#\s+RUN\s+(?P<name>\S+)")
PLAN = re.compile(r"^1\.\.(\d+)")
TOOK = re.compile(r"^# \S+ took (\d+) s")
TIMESTAMP = re.compile(r"^\[\s*(\d+\.\d+)\] ?")

REFERENCE, SUBJECT = "test_hmm", "rsva"


@dataclass
class Result:
    status: str                      # "pass", "fail" or "skip"
    reason: str = ""                 # the SKIP reason
    output: list = field(default_factory=list)
    secs: float = None               # from its RUN line to its result


@dataclass
class Run:
    label: str
    results: dict = field(default_factory=dict)   # case -> Result, in order
    plan: int = None
    rc: int = None                   # None: no END marker
    took: int = None
    output: list = field(default_factory=list)    # the last lines seen

    def count(self, status):
        return sum(1 for r in self.results.values() if r.status == status)


def clean(line):
    return TIMESTAMP.sub("", line.rstrip("\r\n").replace("\r", ""))


def parse(lines, binary="hmm-tests"):
    """The runs of BINARY in the user log, by label. Lines that start with
    the uptime ("[SECONDS] ", vm/tap.sh run_raw) give each case its time."""
    runs, cur, case_out, began = {}, None, [], None
    for raw in lines:
        stamp = TIMESTAMP.match(raw)
        now = float(stamp.group(1)) if stamp else None
        line = clean(raw)
        m = RAW.match(line)
        if m and m.group("bin") == binary:
            if m.group("begin"):
                cur = runs[m.group("label")] = Run(m.group("label"))
                case_out = []
            elif cur is not None and cur.label == m.group("label"):
                cur.rc = int(m.group("rc"))
                cur = None
            continue
        if cur is None:
            continue
        cur.output = (cur.output + [line])[-40:]
        if RUN.match(line):
            case_out, began = [line], now
            continue
        r = RESULT.match(line)
        if r:
            directive = r.group("directive") or ""
            skip = re.match(r"SKIP\b\s*(.*)", directive, re.IGNORECASE)
            if r.group("not"):
                status, reason = "fail", ""
            elif skip:
                status, reason = "skip", skip.group(1).strip()
            else:
                status, reason = "pass", ""
            secs = now - began if now is not None and began is not None else None
            cur.results[r.group("name")] = Result(status, reason, case_out + [line], secs)
            case_out, began = [], None
            continue
        p = PLAN.match(line)
        if p:
            cur.plan = int(p.group(1))
            continue
        t = TOOK.match(line)
        if t:
            cur.took = int(t.group(1))
            continue
        case_out.append(line)
    return runs


def run_complete(run):
    """Why RUN did not run to the end, or None."""
    if run.rc is None:
        return "no END marker: it crashed or hung"
    if not run.results:
        return f"no results (exit status {run.rc})"
    if run.plan is not None and run.plan != len(run.results):
        return f"planned {run.plan} cases, saw {len(run.results)}"
    if run.rc != 0 and run.count("fail") == 0:
        return f"exit status {run.rc} with no failing case"
    return None


def compare_case(ref, got):
    """(status, why) of one case: REF on test_hmm, GOT on rsva (None: no result)."""
    if ref is None:
        return "fail", "no result on test_hmm"
    if ref.status == "fail":
        return "fail", "fails on test_hmm itself"
    if got is None:
        return "fail", "no result on rsva"
    if ref.status == "pass":
        if got.status == "pass":
            return "pass", ""
        return "fail", f"passes on test_hmm, {'fails' if got.status == 'fail' else 'skipped'} on rsva"
    if got.status == "fail":
        return "fail", f"skipped on test_hmm ({ref.reason}), fails on rsva"
    if got.status == "pass":
        return "skip", f"skipped on test_hmm ({ref.reason}), passes on rsva: nothing to compare"
    return "skip", f"skipped on both: {ref.reason}"


def compare(lines, binary="hmm-tests"):
    """The counted results of the two runs of BINARY in the user log:
    a list of (name, status, output). Empty when neither run is there."""
    runs = parse(lines, binary)
    if not runs:
        return []
    out = []
    for label in (REFERENCE, SUBJECT):
        run = runs.get(label)
        name = f"{binary}@{label} ran to the end"
        why = run_complete(run) if run else "it never started"
        out.append((name, "fail" if why else "pass", (run.output if run else []) + ([why] if why else [])))
    ref = runs.get(REFERENCE, Run(REFERENCE)).results
    got = runs.get(SUBJECT, Run(SUBJECT)).results
    for case in list(ref) + [c for c in got if c not in ref]:
        status, why = compare_case(ref.get(case), got.get(case))
        output = []
        if status == "fail":
            for label, res in ((REFERENCE, ref.get(case)), (SUBJECT, got.get(case))):
                if res is not None and res.status != "pass":
                    output += [f"[{label}]"] + res.output[-30:]
            output.append(why)
        elif status == "skip":
            output = [why]
        out.append((f"{binary} {case}: rsva as test_hmm", status, output))
    return out


def table(lines, binary="hmm-tests", out=sys.stdout):
    runs = parse(lines, binary)
    ref = runs.get(REFERENCE, Run(REFERENCE))
    got = runs.get(SUBJECT, Run(SUBJECT))
    cases = list(ref.results) + [c for c in got.results if c not in ref.results]
    width = max((len(c) for c in cases), default=10)

    def cell(res):
        if res is None:
            return "-"
        return res.status + (f" {res.secs:.1f}s" if res.secs is not None else "")

    print(f"{'case':<{width}}  {'test_hmm':<12}  {'rsva':<12}  comparison", file=out)
    for case in cases:
        r, g = ref.results.get(case), got.results.get(case)
        status, why = compare_case(r, g)
        print(f"{case:<{width}}  {cell(r):<12}  {cell(g):<12}  "
              f"{status}{': ' + why if why else ''}", file=out)
    for run in (ref, got):
        print(f"{binary}@{run.label}: {run.count('pass')} passed, {run.count('fail')} failed, "
              f"{run.count('skip')} skipped; took {run.took if run.took is not None else '?'} s; "
              f"{run_complete(run) or 'ran to the end'}", file=out)
    n = {"pass": 0, "fail": 0, "skip": 0}
    for _, status, _ in compare(lines, binary):
        n[status] += 1
    print(f"compared: {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped", file=out)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[1])
    if path.is_dir():
        path = path / "user.log"
    table(path.read_text(errors="replace").splitlines())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
