// SPDX-License-Identifier: GPL-2.0

//! IOMMU abstractions that rsva needs and the kernel crate does not have
//! yet, written as they would be under `rust/kernel/iommu/`.

#[expect(
    dead_code,
    reason = "DmaApiUse serves rsva_sim's bus, which compiles this file too"
)]
pub(crate) mod dma_owner;
