#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Plot how rsva's costs grow, from the figures 'make bench' kept.

    scripts/plot_bench.py out/bench.json out/bench.png

Three panels, each rsva against the kernel's C code measured in the same
boot: bind+unbind rate against the number of live bound address spaces,
mirror throughput against the size of the range, and the rate of two
processes binding at once on one and on two vCPUs.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

C_STYLE = dict(color="tab:blue", marker="o", label="C (kernel)")
RSVA_STYLE = dict(color="tab:red", marker="s", label="rsva (Rust)")


def bind_vs_live(ax, d):
    ax.plot(d["live"], d["c_per_s"], **C_STYLE)
    ax.plot(d["live"], d["rsva_per_s"], **RSVA_STYLE)
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("address spaces bound to the device")
    ax.set_ylabel("bind+unbind cycles/s")
    ax.set_title("SVA bind cost against live bonds")
    ax.legend()


def mirror_vs_range(ax, d):
    mib = [k / 1024 for k in d["kib"]]
    ax.plot(mib, d["read_test_hmm_mib_per_s"], color="tab:blue", marker="o",
            label="READ, test_hmm (C)")
    ax.plot(mib, d["read_rsva_mib_per_s"], color="tab:red", marker="s",
            label="READ, rsva")
    ax.plot(mib, d["memcpy_mib_per_s"], color="grey", linestyle="--",
            label="guest memcpy")
    snap = ax.twinx()
    snap.plot(mib, [p / 1e6 for p in d["snapshot_test_hmm_pages_per_s"]],
              color="tab:blue", marker="o", linestyle=":",
              label="SNAPSHOT, test_hmm (C)")
    snap.plot(mib, [p / 1e6 for p in d["snapshot_rsva_pages_per_s"]],
              color="tab:red", marker="s", linestyle=":",
              label="SNAPSHOT, rsva")
    snap.set_ylabel("SNAPSHOT M pages/s (dotted)")
    snap.set_ylim(bottom=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("range (MiB)")
    ax.set_ylabel("READ MiB/s (solid)")
    ax.set_title("HMM mirror throughput against range size")
    lines = ax.get_lines() + snap.get_lines()
    ax.legend(lines, [l.get_label() for l in lines], fontsize="small")


def vcpus(ax, d):
    x = range(len(d["cpus"]))
    w = 0.38
    ax.bar([i - w / 2 for i in x], d["concurrent_c_per_s"], w,
           color="tab:blue", label="C (kernel)")
    ax.bar([i + w / 2 for i in x], d["concurrent_rsva_per_s"], w,
           color="tab:red", label="rsva (Rust)")
    ax.set_xticks(list(x), [f"{c} vCPU" + ("s" if c > 1 else "")
                            for c in d["cpus"]])
    ax.set_ylabel("bind+unbind cycles/s, both processes")
    ax.set_title("2 processes on 2 devices: 1 and 2 vCPUs")
    ax.legend()


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        figures = json.load(f)
    panels = [(bind_vs_live, "bind_vs_live"),
              (mirror_vs_range, "mirror_vs_range"),
              (vcpus, "vcpus")]
    missing = [key for _, key in panels if key not in figures]
    if missing:
        sys.exit(f"plot_bench: {src} lacks {', '.join(missing)}")
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    for ax, (draw, key) in zip(axes, panels):
        draw(ax, figures[key])
        ax.grid(True, alpha=0.3)
    fig.suptitle("rsva against the kernel's C code, one VM boot "
                 "(TCG, KASAN + lockdep + kmemleak kernel)")
    fig.tight_layout()
    fig.savefig(dst, dpi=90)


if __name__ == "__main__":
    main()
