#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Fails when a file of a Rust crate imports a file that imports it back,
directly or through others (an import circle puts a lower layer above an
upper one).

Usage: import_cycles.py ROOT_DIR [ROOT_DIR...]: each directory is one
crate's files (rust/ without rust/sim/, rust/sim/). A file's module is its
path below the directory; it depends on every module it names through
crate:: (in `use` lists too) or, in a submodule, super::. Comments are
left out. Prints each circle and exits 1, or exits 0.
"""
import pathlib
import re
import sys


def modules(root, skip):
    """The crate's modules, by name (a::b), with their files."""
    mods = {}
    for f in sorted(root.rglob("*.rs")):
        if any(s in f.parents for s in skip):
            continue
        mods["::".join(f.relative_to(root).with_suffix("").parts)] = f
    return mods


def top_names(block):
    """The top-level names of a use list `a::{b, c}, d`."""
    depth, cur, names = 0, "", []
    for ch in block:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            names.append(cur.strip())
            cur = ""
        else:
            cur += ch
    names.append(cur.strip())
    return names


def deps(name, path, mods):
    text = re.sub(r"//[^\n]*", "", path.read_text())
    paths = re.findall(r"crate::([a-z_]+(?:::[a-z_]+)?)", text)
    for block in re.findall(r"use crate::\{(.*?)\};", text, re.S):
        paths += [n for n in top_names(block) if n]
    if "::" in name:
        parent = name.rsplit("::", 1)[0]
        paths += [f"{parent}::{m}" for m in re.findall(r"super::([a-z_]+)", text)]
    out = set()
    for p in paths:
        m = re.match(r"([a-z_]+)(?:::([a-z_]+))?", p)
        if not m:
            continue
        two = f"{m.group(1)}::{m.group(2)}" if m.group(2) else None
        if two in mods:
            out.add(two)
        elif m.group(1) in mods:
            out.add(m.group(1))
    out.discard(name)
    return out


def circles(graph):
    """The strongly connected components of more than one module."""
    index, low, stack, on, found, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    roots = [pathlib.Path(a) for a in sys.argv[1:]]
    bad = False
    for root in roots:
        skip = [r for r in roots if r != root and root in r.parents]
        mods = modules(root, skip)
        graph = {m: deps(m, f, mods) for m, f in mods.items()}
        for comp in circles(graph):
            bad = True
            print(f"{root}: import circle:")
            for m in comp:
                print(f"  {m} -> {', '.join(sorted(d for d in graph[m] if d in comp))}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
