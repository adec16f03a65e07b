// SPDX-License-Identifier: GPL-2.0

//! DMA ownership of IOMMU groups: the claims made through rsva's C API,
//! kept apart from SVA binds on the same group ([`claims`]). The owner
//! types themselves are in the abstraction layer
//! (`kext/iommu/dma_owner.rs`).

pub(crate) mod claims;
