// SPDX-License-Identifier: GPL-2.0
/*
 * rsva: exports of the C API. The functions are written in Rust
 * (rust/ffi/sva.rs); this file gives them to other modules, with the
 * prototypes of include/rsva.h checked against the definitions' uses.
 */
#include <kunit/visibility.h>
#include <linux/export.h>
#include <linux/module.h>
#include <rsva.h>
#include <rsva_test.h>

EXPORT_SYMBOL_GPL(rsva_pasid_range_check);
EXPORT_SYMBOL_GPL(rsva_sva_bind_device);
EXPORT_SYMBOL_GPL(rsva_sva_bind_device_stop);
EXPORT_SYMBOL_GPL(rsva_sva_bind_current);
EXPORT_SYMBOL_GPL(rsva_sva_unbind_device);
EXPORT_SYMBOL_GPL(rsva_sva_get_pasid);
EXPORT_SYMBOL_GPL(rsva_pasid_get_mm);
EXPORT_SYMBOL_GPL(rsva_sva_serving);
EXPORT_SYMBOL_GPL(rsva_dma_claim_group);
EXPORT_SYMBOL_GPL(rsva_dma_release_group);
EXPORT_SYMBOL_GPL(rsva_dma_claim_device);
EXPORT_SYMBOL_GPL(rsva_dma_release_device);
EXPORT_SYMBOL_GPL(rsva_dma_claimed);
EXPORT_SYMBOL_GPL(rsva_mirror_register);
EXPORT_SYMBOL_GPL(rsva_mirror_unregister);
EXPORT_SYMBOL_GPL(rsva_mirror_fault);
EXPORT_SYMBOL_IF_KUNIT(rsva_test_mirrors);
EXPORT_SYMBOL_IF_KUNIT(rsva_test_set_serving);
EXPORT_SYMBOL_IF_KUNIT(rsva_test_watches);
EXPORT_SYMBOL_IF_KUNIT(rsva_test_tracked);
EXPORT_SYMBOL_IF_KUNIT(rsva_test_pasid_uid);
