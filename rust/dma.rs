// SPDX-License-Identifier: GPL-2.0

//! DMA ownership of IOMMU groups: the claims made through rsva's C API,
//! kept apart from SVA binds on the same group ([`claims`]). The claim
//! types themselves are the kernel crate's (`kernel::iommu::dma_owner`,
//! added by a patch), shared with rsva_sim's bus.

#![forbid(unsafe_code)]

pub(crate) mod claims;
