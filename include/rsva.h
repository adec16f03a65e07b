/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rsva: shared virtual addressing in Rust - the C API for drivers.
 *
 * Every function returns 0 or a positive value on success and a negative
 * errno on failure; none of them crashes on bad input.
 */
#ifndef _RSVA_H
#define _RSVA_H

#include <linux/types.h>

/* Width of a PCIe PASID in bits, and the largest PASID a device can carry. */
#define RSVA_PASID_BITS		20
#define RSVA_PASID_MAX		((1U << RSVA_PASID_BITS) - 1)

/**
 * rsva_pasid_range_check() - validate a range that PASIDs may be drawn from
 * @min: the smallest PASID of the range; 0 is reserved for DMA without PASID
 * @max: the largest PASID of the range, at least @min
 *
 * Context: any context.
 * Return: the number of PASIDs in [@min, @max], or -EINVAL when @min is 0,
 * @max is below @min, or @max exceeds %RSVA_PASID_MAX.
 */
int rsva_pasid_range_check(u32 min, u32 max);

#endif /* _RSVA_H */
