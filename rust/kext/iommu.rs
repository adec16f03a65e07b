// SPDX-License-Identifier: GPL-2.0

//! IOMMU abstractions that rsva needs and the kernel crate does not have
//! yet, written as they would be under `rust/kernel/iommu/` (the group and
//! DMA-ownership types are there, from patch 0012).

pub(crate) mod domain;
pub(crate) mod group;
pub(crate) mod iopf;
pub(crate) mod pasid;
pub(crate) mod sva;
