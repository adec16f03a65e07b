// SPDX-License-Identifier: GPL-2.0

//! The abstraction layer: every type of rsva that wraps a C structure or
//! calls the kernel through `bindings`, laid out as `rust/kernel/` is
//! (`device/`, `iommu/`, `mm/`, `sync/`), with the C helpers rsva needs in [`glue`]. The logic
//! files above it (`sva/`, `mirror/`, `dma/`) use these types.
//!
//! What rsva shares with rsva_sim is in the kernel crate itself, added by
//! the patches: `kernel::mm::mmu_notifier` (an mmu notifier embedded in an
//! `Arc`'d object) and `kernel::iommu::dma_owner` (IOMMU groups, DMA owners
//! and their claims). Two modules cannot share Rust items any other way.

#![allow(unsafe_code, reason = "the abstraction layer over the kernel's C code")]

pub(crate) mod device;
pub(crate) mod glue;
pub(crate) mod handles;
pub(crate) mod iommu;
pub(crate) mod mm;
pub(crate) mod sync;
