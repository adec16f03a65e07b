/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Paired comparisons for rsva's benchmarks: the kernel's C code and rsva
 * run the same work one right after the other (which goes first
 * alternates), each pair gives one rsva/C time ratio, and the median of
 * the pairs' ratios is the figure, with its quartiles.
 *
 * Under TCG the speed of the guest drifts by a factor of two within a boot
 * (the host's other work): a best-of-N per side compares runs made at
 * different speeds, a pair sees the drift only as far as it moves within
 * the pair.
 */
#ifndef _RSVA_BENCH_PAIRS_H
#define _RSVA_BENCH_PAIRS_H

#include "rsva_sim_util.h"

/* The two sides of a pair. */
enum { SIDE_C, SIDE_RSVA };

/* The outcome of paired_compare(). */
struct paired {
	/* Of the rsva/C time ratios. */
	double q1, median, q3;
	/* The shortest run of each side, in seconds. */
	double fastest[2];
	int pairs;
};

/* Runs one side's share of a pair (the same work for both); seconds. */
typedef double (*paired_run_fn)(int side, void *ctx);

/* @pairs pairs of @run, C first in the even ones, rsva in the odd ones. */
static inline struct paired paired_compare(paired_run_fn run, void *ctx, int pairs)
{
	struct paired p = { .fastest = { 1e30, 1e30 }, .pairs = pairs };
	double *ratio = calloc(pairs, sizeof(*ratio));
	double t[2];
	int i, first, side;

	if (!ratio) {
		perror("calloc");
		exit(1);
	}
	for (i = 0; i < pairs; i++) {
		first = i % 2 ? SIDE_RSVA : SIDE_C;
		t[first] = run(first, ctx);
		t[!first] = run(!first, ctx);
		ratio[i] = t[SIDE_RSVA] / t[SIDE_C];
		for (side = 0; side < 2; side++)
			if (t[side] < p.fastest[side])
				p.fastest[side] = t[side];
	}
	qsort(ratio, pairs, sizeof(*ratio), cmp_double);
	p.q1 = ratio[pairs / 4];
	p.median = ratio[pairs / 2];
	p.q3 = ratio[pairs - 1 - pairs / 4];
	free(ratio);
	return p;
}

/* "(median of N pairs, quartiles A..B": the figure's spread, for a line. */
static inline const char *paired_spread(const struct paired *p)
{
	static char s[64];

	snprintf(s, sizeof(s), "median of %d pairs, quartiles %.3f..%.3f", p->pairs, p->q1, p->q3);
	return s;
}

#endif
