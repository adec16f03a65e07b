#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read the logs of a test VM run and give the verdict.

    scripts/verdict.py DIR

DIR holds console.log (the kernel log, ttyS0: KUnit KTAP and any splat),
user.log (what /init and the tests printed, ttyS1: kselftest TAP framed by
"=== RSVA-TAP <name> BEGIN/END rc=<n>", the kmemleak report, the end marker)
and qemu.rc. The two runs of the kernel's hmm-tests ("=== RSVA-RAW
hmm-tests@test_hmm|rsva BEGIN/END") are not counted as they are but
compared case by case (scripts/hmm_compare.py). Every failing case is
printed with its output; the last line is "N passed, N failed, N skipped". The exit status is 1 when a case failed,
the VM did not reach the end of /init, or the kernel log shows a KASAN
report, a lockdep splat, a WARN, a BUG, an Oops, a refcount warning, a
panic, a hung task or a kmemleak leak, even when every case passed.
"""

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hmm_compare

TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ?")
RESULT = re.compile(r"^(?P<indent>\s*)(?P<not>not )?ok (?P<num>\d+)(?: -)? ?(?P<rest>.*)$")
SUBTEST = re.compile(r"^(?P<indent>\s*)# Subtest: (?P<name>\S+)")

# What in the kernel log means the run is not clean, whatever the tests say.
SPLATS = [
    (re.compile(r"BUG: KASAN"), "KASAN report"),
    (re.compile(r"WARNING: possible|WARNING: inconsistent|WARNING: suspicious RCU"
                r"|INFO: trying to register non-static key|DEBUG_LOCKS_WARN_ON"
                r"|WARNING: bad unlock|WARNING: held lock|WARNING: lock held"),
     "lockdep splat"),
    (re.compile(r"refcount_t: "), "refcount warning"),
    (re.compile(r"kmemleak: \d+ new suspected memory leaks"), "kmemleak leak"),
    (re.compile(r"kernel BUG at|BUG: "), "BUG"),
    # 7.3: "WARNING: file:line at func, CPU#n: comm/pid"; older kernels:
    # "WARNING: CPU: n PID: n at ...". Lockdep's WARNINGs matched above.
    (re.compile(r"^WARNING: "), "WARN"),
    (re.compile(r"Oops: |Oops\b|general protection fault"), "Oops"),
    (re.compile(r"Kernel panic"), "panic"),
    (re.compile(r"panicked at "), "Rust panic"),
    (re.compile(r"INFO: task .* blocked for more than"), "hung task"),
    (re.compile(r"rcu: INFO: .* detected stalls?"), "RCU stall"),
    (re.compile(r"UBSAN: "), "UBSAN report"),
    (re.compile(r"list_(add|del) corruption"), "list corruption"),
    (re.compile(r"Call Trace:"), "stack trace"),
]


@dataclass
class Case:
    source: str          # "kunit" or the kselftest group
    name: str
    status: str          # "pass", "fail" or "skip"
    output: list = field(default_factory=list)


@dataclass
class Verdict:
    cases: list = field(default_factory=list)
    problems: list = field(default_factory=list)   # (title, context lines)

    def add_kunit(self, case):
        """Add a KUnit case; a suite that runs again (its module was
        reloaded) adds no new cases, but a failure in any run stays one."""
        for i, c in enumerate(self.cases):
            if c.source == "kunit" and c.name == case.name:
                if case.status == "fail" or c.status == "skip":
                    self.cases[i] = case
                return
        self.cases.append(case)

    def counts(self):
        n = {"pass": 0, "fail": 0, "skip": 0}
        for c in self.cases:
            n[c.status] += 1
        return n

    @property
    def red(self):
        return self.counts()["fail"] > 0 or bool(self.problems)


def clean(line):
    return TIMESTAMP.sub("", line.rstrip("\r\n").replace("\r", ""))


def result_status(m):
    rest = m.group("rest")
    if m.group("not"):
        return "fail"
    if re.search(r"#\s*SKIP", rest, re.IGNORECASE):
        return "skip"
    return "pass"


def result_name(m):
    return re.split(r"\s+#", m.group("rest"), maxsplit=1)[0].strip()


def parse_kunit(lines, verdict):
    """KUnit KTAP from the kernel log: count leaf results only.

    A result at depth d is a parent when results at depth d + 1 came since
    the last result at depth <= d; a parent adds no case of its own, but a
    suite that fails without any case (its init failed) is one failure.
    """
    children = {}            # depth -> results seen at that depth since reset
    output = []
    open_subtests = []       # (depth, name) of "# Subtest:" not yet closed
    in_ktap = False
    for line in lines:
        if line.strip().startswith("KTAP version"):
            in_ktap = True
            continue
        if not in_ktap:
            continue
        st = SUBTEST.match(line)
        if st:
            open_subtests.append((len(st.group("indent")) // 4, st.group("name")))
            output = []
            continue
        m = RESULT.match(line)
        if not m:
            if line.startswith(" ") or line.startswith("#"):
                output.append(line)
            continue
        depth = len(m.group("indent")) // 4
        name = result_name(m)
        status = result_status(m)
        if children.get(depth + 1):
            children[depth + 1] = 0
            if open_subtests and open_subtests[-1][0] == depth + 1:
                open_subtests.pop()
        else:
            if open_subtests and open_subtests[-1][0] == depth + 1 and open_subtests[-1][1] == name:
                open_subtests.pop()
            suite = next((n for d, n in reversed(open_subtests) if d == depth), None)
            verdict.add_kunit(Case("kunit", f"{suite}.{name}" if suite else name, status, output))
        children[depth] = children.get(depth, 0) + 1
        output = []
    for depth, name in open_subtests:
        verdict.add_kunit(Case("kunit", name, "fail", ["suite started but never finished"]))


def parse_kselftests(lines, verdict):
    """kselftest TAP framed by RSVA-TAP markers in the plan's log."""
    group, results, plan, output = None, 0, None, []
    for line in lines:
        begin = re.match(r"^=== RSVA-TAP (\S+) BEGIN", line)
        end = re.match(r"^=== RSVA-TAP (\S+) END rc=(-?\d+)", line)
        if begin:
            if group:
                verdict.cases.append(Case(group, "(group)", "fail", output + ["no END marker"]))
            group, results, plan, output = begin.group(1), 0, None, []
            failed_before = verdict.counts()["fail"]
            continue
        if group is None:
            continue
        if end:
            rc = int(end.group(2))
            if plan is not None and plan != results:
                verdict.cases.append(Case(group, "(plan)", "fail",
                                          output + [f"planned {plan} tests, saw {results}"]))
            if results == 0:
                verdict.cases.append(Case(group, "(no results)", "fail",
                                          output + [f"exit status {rc}"]))
            elif rc != 0 and verdict.counts()["fail"] == failed_before:
                verdict.cases.append(Case(group, "(exit status)", "fail",
                                          output + [f"exit status {rc} with no failing case"]))
            group = None
            continue
        p = re.match(r"^1\.\.(\d+)", line)
        if p:
            plan = int(p.group(1))
            continue
        m = RESULT.match(line)
        if m and not m.group("indent"):
            results += 1
            verdict.cases.append(Case(group, result_name(m), result_status(m), output))
            output = []
        else:
            output.append(line)
    if group:
        verdict.cases.append(Case(group, "(group)", "fail", output[-40:] + ["no END marker: crashed or hung"]))


def find_splats(lines, verdict):
    for i, line in enumerate(lines):
        for pattern, title in SPLATS:
            if pattern.search(line):
                verdict.problems.append((f"kernel log: {title}", lines[max(0, i - 2):i + 30]))
                break


def check_end(user, qemu_rc, verdict):
    if "=== RSVA-VM END" not in user:
        why = "timed out" if qemu_rc in ("124", "137") else f"qemu exit {qemu_rc}"
        verdict.problems.append((f"the VM did not reach the end of /init ({why})", user[-20:]))
    if "=== RSVA-VM BEGIN" not in "\n".join(user):
        verdict.problems.append(("the VM never started /init", []))
    leak = False
    section = []
    inside = False
    for line in user:
        if line.startswith("=== RSVA-KMEMLEAK BEGIN"):
            inside = True
        elif line.startswith("=== RSVA-KMEMLEAK END"):
            inside = False
        elif inside:
            section.append(line)
    if any("unreferenced object" in l for l in section):
        leak = True
        verdict.problems.append(("kmemleak: suspected leaks", section[:60]))
    if not leak and any("kmemleak: not available" in l for l in section):
        verdict.problems.append(("kmemleak was not active: the leak check would prove nothing", []))


def judge(console, user, qemu_rc="0"):
    verdict = Verdict()
    console = [clean(l) for l in console]
    user = [clean(l) for l in user]
    parse_kunit(console, verdict)
    parse_kselftests(user, verdict)
    # hmm-tests against test_hmm and against rsva: counted compared.
    for name, status, output in hmm_compare.compare(user):
        verdict.cases.append(Case("hmm-tests", name, status, output))
    find_splats(console, verdict)
    check_end(user, qemu_rc, verdict)
    if not verdict.cases:
        verdict.problems.append(("no test ran", []))
    return verdict


def report(verdict, out=sys.stdout):
    for c in verdict.cases:
        if c.status == "fail":
            print(f"FAIL [{c.source}] {c.name}", file=out)
            for line in c.output[-40:]:
                print(f"    {line}", file=out)
    for title, context in verdict.problems:
        print(f"PROBLEM: {title}", file=out)
        for line in context:
            print(f"    {line}", file=out)
    n = verdict.counts()
    if verdict.red:
        print("verdict: RED", file=out)
    else:
        print("verdict: GREEN", file=out)
    print(f"{n['pass']} passed, {n['fail']} failed, {n['skip']} skipped", file=out)


def read_lines(path):
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = Path(argv[1])
    rc_file = d / "qemu.rc"
    qemu_rc = rc_file.read_text().strip() if rc_file.exists() else "?"
    verdict = judge(read_lines(d / "console.log"), read_lines(d / "user.log"), qemu_rc)
    report(verdict)
    return 1 if verdict.red else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
