#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Tests of scripts/verdict.py on made-up logs: each way a run can go wrong
must turn the verdict red, and a clean run must stay green."""

import io
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import verdict  # noqa: E402

KUNIT_GREEN = """\
[    5.100000] KTAP version 1
[    5.100001] 1..1
[    5.100002]     KTAP version 1
[    5.100003]     # Subtest: rsva_pasid_range
[    5.100004]     # module: rsva
[    5.100005]     1..2
[    5.100006]     ok 1 accepts_valid_ranges
[    5.100007]     ok 2 rejects_invalid_ranges
[    5.100008] # rsva_pasid_range: pass:2 fail:0 skip:0 total:2
[    5.100009] ok 1 rsva_pasid_range
"""

USER_GREEN = """\
=== RSVA-VM BEGIN 7.3.4 plan=check
=== RSVA-TAP modules BEGIN
TAP version 13
ok 1 uacce loads
ok 2 idxd loads # SKIP no DSA hardware
1..2
=== RSVA-TAP modules END rc=0
=== RSVA-TAP rsva_debugfs_test BEGIN
TAP version 13
1..1
# Starting 1 tests from 1 test cases.
#  RUN           global.version ...
#            OK  global.version
ok 1 global.version
# PASSED: 1 / 1 tests passed.
=== RSVA-TAP rsva_debugfs_test END rc=0
=== RSVA-KMEMLEAK BEGIN
=== RSVA-KMEMLEAK END
=== RSVA-VM END
"""


def run(console=KUNIT_GREEN, user=USER_GREEN, rc="0"):
    v = verdict.judge(console.splitlines(), user.splitlines(), rc)
    out = io.StringIO()
    verdict.report(v, out)
    return v, out.getvalue().splitlines()


class VerdictTest(unittest.TestCase):
    def test_green_run_counts_leaves_only(self):
        v, out = run()
        self.assertFalse(v.red)
        self.assertEqual(out[-1], "4 passed, 0 failed, 1 skipped")

    def test_failing_kunit_case_is_red_and_shown(self):
        console = KUNIT_GREEN.replace(
            "    ok 2 rejects_invalid_ranges",
            "    # rejects_invalid_ranges: EXPECTATION FAILED at rust/sva/pasid.rs:90\n"
            "[    5.1]     not ok 2 rejects_invalid_ranges")
        v, out = run(console=console)
        self.assertTrue(v.red)
        self.assertIn("FAIL [kunit] rsva_pasid_range.rejects_invalid_ranges", out)
        self.assertTrue(any("EXPECTATION FAILED" in l for l in out))
        self.assertEqual(out[-1], "3 passed, 1 failed, 1 skipped")

    def test_suite_run_again_counts_once_and_keeps_failures(self):
        v, out = run(console=KUNIT_GREEN + KUNIT_GREEN)
        self.assertFalse(v.red)
        self.assertEqual(out[-1], "4 passed, 0 failed, 1 skipped")
        again = KUNIT_GREEN.replace("    ok 1 accepts", "    not ok 1 accepts")
        v, out = run(console=KUNIT_GREEN + again)
        self.assertTrue(v.red)
        self.assertEqual(out[-1], "3 passed, 1 failed, 1 skipped")

    def test_failing_kselftest_case_is_red(self):
        user = USER_GREEN.replace("ok 1 global.version", "not ok 1 global.version")
        v, out = run(user=user)
        self.assertTrue(v.red)
        self.assertIn("FAIL [rsva_debugfs_test] global.version", out)

    def test_suite_that_never_finishes_is_a_failure(self):
        console = KUNIT_GREEN.split("    ok 2")[0]
        v, _ = run(console=console)
        self.assertTrue(v.red)

    def test_crashed_selftest_is_a_failure(self):
        user = USER_GREEN.replace("ok 1 global.version\n", "").replace(
            "=== RSVA-TAP rsva_debugfs_test END rc=0", "=== RSVA-TAP rsva_debugfs_test END rc=139")
        v, _ = run(user=user)
        self.assertTrue(v.red)

    def test_nonzero_exit_without_failure_is_a_failure(self):
        user = USER_GREEN.replace("rsva_debugfs_test END rc=0", "rsva_debugfs_test END rc=1")
        v, _ = run(user=user)
        self.assertTrue(v.red)

    def test_warn_turns_red_even_when_all_pass(self):
        for splat in ["WARNING: CPU: 1 PID: 77 at rust/rsva_main.rs:10 init+0x1/0x2",
                      "WARNING: selftests/modules/rsva_client.c:45 at init_module+0x39/0x1000"
                      " [rsva_client], CPU#0: insmod/71",
                      "BUG: KASAN: slab-use-after-free in rsva_unbind+0x10/0x20",
                      "WARNING: possible circular locking dependency detected",
                      "refcount_t: underflow; use-after-free.",
                      "Oops: general protection fault, probably for non-canonical address",
                      "kernel BUG at mm/mmap.c:100!",
                      "kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
                      "rust_kernel: panicked at rust/sva/pasid.rs:1:1:"]:
            v, out = run(console=KUNIT_GREEN + f"[    9.000000] {splat}\n")
            self.assertTrue(v.red, splat)
            self.assertTrue(any(l.startswith("PROBLEM: kernel log") for l in out), splat)
            if splat.startswith("WARNING: selftests"):
                self.assertIn("PROBLEM: kernel log: WARN", out)

    def test_vm_that_does_not_finish_is_red(self):
        v, _ = run(user=USER_GREEN.replace("=== RSVA-VM END\n", ""), rc="124")
        self.assertTrue(v.red)

    def test_kmemleak_report_is_red(self):
        user = USER_GREEN.replace("=== RSVA-KMEMLEAK END",
                                  "unreferenced object 0xffff888 (size 64):\n=== RSVA-KMEMLEAK END")
        v, _ = run(user=user)
        self.assertTrue(v.red)

    def test_inactive_kmemleak_is_red(self):
        user = USER_GREEN.replace("=== RSVA-KMEMLEAK END",
                                  "kmemleak: not available\n=== RSVA-KMEMLEAK END")
        v, _ = run(user=user)
        self.assertTrue(v.red)

    def test_no_tests_is_red(self):
        v, _ = run(console="", user="=== RSVA-VM BEGIN\n=== RSVA-KMEMLEAK BEGIN\n"
                                    "=== RSVA-KMEMLEAK END\n=== RSVA-VM END\n")
        self.assertTrue(v.red)


HMM_RUN = """\
=== RSVA-RAW hmm-tests@{label} BEGIN
TAP version 13
1..3
# Starting 3 tests from 2 test cases.
#  RUN           hmm.hmm_device_private.open_close ...
#            OK  hmm.hmm_device_private.open_close
ok 1 hmm.hmm_device_private.open_close
#  RUN           hmm.hmm_device_private.exclusive ...
# hmm-tests.c:1630:exclusive:Expected 0 (0) == ret (-95)
#            FAIL  hmm.hmm_device_private.exclusive
{excl} 2 hmm.hmm_device_private.exclusive
#  RUN           hmm.hmm_device_coherent.open_close ...
#      SKIP      DEVICE_COHERENT not available
ok 3 hmm.hmm_device_coherent.open_close # SKIP DEVICE_COHERENT not available
# hmm-tests@{label} took 12 s
=== RSVA-RAW hmm-tests@{label} END rc={rc}
"""


def hmm_user(rsva_excl="ok", ref_excl="ok", rsva=True):
    runs = HMM_RUN.format(label="test_hmm", excl=ref_excl, rc=0 if ref_excl == "ok" else 1)
    if rsva:
        runs += HMM_RUN.format(label="rsva", excl=rsva_excl, rc=0 if rsva_excl == "ok" else 1)
    return USER_GREEN.replace("=== RSVA-KMEMLEAK BEGIN", runs + "=== RSVA-KMEMLEAK BEGIN")


class HmmCompareTest(unittest.TestCase):
    def cases(self, v):
        return {c.name: c.status for c in v.cases if c.source == "hmm-tests"}

    def test_same_results_are_green_and_counted_once(self):
        v, out = run(user=hmm_user())
        self.assertFalse(v.red, out)
        c = self.cases(v)
        self.assertEqual(c["hmm-tests hmm.hmm_device_private.exclusive: rsva as test_hmm"], "pass")
        self.assertEqual(c["hmm-tests hmm.hmm_device_coherent.open_close: rsva as test_hmm"], "skip")
        self.assertEqual(c["hmm-tests@rsva ran to the end"], "pass")
        # Two runs of three cases: three compared results and two run checks.
        self.assertEqual(len(c), 5)

    def test_a_case_failing_on_rsva_only_is_red(self):
        v, out = run(user=hmm_user(rsva_excl="not ok"))
        self.assertTrue(v.red)
        self.assertEqual(self.cases(v)["hmm-tests hmm.hmm_device_private.exclusive: rsva as test_hmm"],
                         "fail")
        self.assertIn("    passes on test_hmm, fails on rsva", out)

    def test_a_case_failing_on_test_hmm_is_red(self):
        v, out = run(user=hmm_user(ref_excl="not ok"))
        self.assertTrue(v.red)
        self.assertIn("    fails on test_hmm itself", out)

    def test_a_missing_or_unfinished_run_is_red(self):
        v, _ = run(user=hmm_user(rsva=False))
        self.assertTrue(v.red)
        self.assertEqual(self.cases(v)["hmm-tests@rsva ran to the end"], "fail")
        user = hmm_user().replace("=== RSVA-RAW hmm-tests@rsva END rc=0\n", "")
        v, _ = run(user=user)
        self.assertTrue(v.red)
        self.assertEqual(self.cases(v)["hmm-tests@rsva ran to the end"], "fail")


if __name__ == "__main__":
    unittest.main()
