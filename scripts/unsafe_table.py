#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Per Rust file of rsva and rsva_sim: lines, `unsafe` blocks, `unsafe fn`
and `unsafe impl` items, `bindings::` uses, and whether the file forbids
unsafe code (`#![forbid(unsafe_code)]`). Comments are not counted.

Usage: scripts/unsafe_table.py [DIR...]   (default: rust)
"""
import pathlib
import re
import sys


def strip_comments(text):
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def row(path):
    text = path.read_text()
    code = strip_comments(text)
    return (
        len(text.splitlines()),
        len(re.findall(r"\bunsafe\s*\{", code)),
        len(re.findall(r"\bunsafe\s+(?:extern\s+\"C\"\s+)?fn\b", code)),
        len(re.findall(r"\bunsafe\s+impl\b", code)),
        code.count("bindings::"),
        "#![forbid(unsafe_code)]" in text,
    )


def main():
    dirs = [pathlib.Path(d) for d in (sys.argv[1:] or ["rust"])]
    files = sorted(f for d in dirs for f in d.rglob("*.rs"))
    print(f"{'file':34} {'lines':>6} {'unsafe{}':>8} {'fn':>4} {'impl':>4} {'bindings':>8}  forbid")
    total = [0] * 5
    for f in files:
        r = row(f)
        total = [t + x for t, x in zip(total, r[:5])]
        print(f"{str(f):34} {r[0]:6} {r[1]:8} {r[2]:4} {r[3]:4} {r[4]:8}  {'yes' if r[5] else ''}")
    print(f"{'total':34} {total[0]:6} {total[1]:8} {total[2]:4} {total[3]:4} {total[4]:8}")


if __name__ == "__main__":
    main()
