// SPDX-License-Identifier: GPL-2.0

//! The abstraction layer: every type of rsva that wraps a C structure or
//! calls the kernel through `bindings`, laid out as `rust/kernel/` is
//! (`mm/`, `iommu/`, `sync/`), with the C helpers rsva needs in [`glue`].
//! The logic files above it (`sva/`, `mirror/`, `dma/`) use these types.

pub(crate) mod glue;
pub(crate) mod iommu;
pub(crate) mod mm;
pub(crate) mod sync;
