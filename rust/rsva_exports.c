// SPDX-License-Identifier: GPL-2.0
/*
 * rsva: exports of the C API. The functions are written in Rust
 * (rust/c_api.rs); this file gives them to other modules, with the
 * prototypes of include/rsva.h checked against the definitions' uses.
 */
#include <linux/export.h>
#include <linux/module.h>
#include <rsva.h>

EXPORT_SYMBOL_GPL(rsva_pasid_range_check);
