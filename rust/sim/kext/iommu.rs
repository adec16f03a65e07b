// SPDX-License-Identifier: GPL-2.0

//! The IOMMU driver side of the IOMMU core, as rsva_sim's software IOMMU
//! uses it, written as it would be under `rust/kernel/iommu/`:
//!
//! - [`driver`]: the `struct iommu_ops` of a driver, built from the
//!   [`driver::IommuDriver`] trait, its static identity and blocked
//!   domains, and the [`driver::Registration`] of the IOMMU for a bus,
//!   which unregisters it on drop, with its I/O page fault queue.
//! - [`iopf`]: that queue ([`iopf::IopfQueue`]), the port of each device
//!   the core probes to it ([`iopf::IopfPort`], closed by the core's
//!   release of the device), and the device in the queue
//!   ([`iopf::IopfMember`]), the only way to report a page request
//!   ([`iopf::PageRequest`]) or flush the device's fault handlers; its drop
//!   takes the device out of the queue.
//! - [`domain`]: the domains such a driver allocates: an SVA domain
//!   ([`domain::SvaDomain`], the driver's data, the `struct iommu_domain`
//!   the core knows and an mmu notifier on the domain's mm, whose callbacks
//!   come from [`domain::SvaDomainOps`]) and a paging domain that maps
//!   nothing ([`domain::PagingDomain`]).
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

pub(crate) mod domain;
pub(crate) mod driver;
pub(crate) mod iopf;
