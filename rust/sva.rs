// SPDX-License-Identifier: GPL-2.0

//! Shared virtual addressing: PASIDs, SVA bonds and I/O page faults.
//!
//! Layers, lowest first (each file imports only those before it):
//!
//! - [`charge`]: the per-user PASID quota.
//! - [`pasid`]: PASID leases, one per mm, generic over what a lease carries.
//! - [`iopf`]: I/O page faults of a bond's PASID.
//! - [`bond`]: SVA bonds, one per (device, mm), carried by the leases.
//! - [`provider`]: rsva serving the kernel's `iommu_sva_bind_device()`.
//!
//! No file of the part has unsafe code: what it needs of the kernel is in
//! the abstraction layer, `kext/`.

#![forbid(unsafe_code)]

pub(crate) mod bond;
pub(crate) mod charge;
pub(crate) mod iopf;
pub(crate) mod pasid;
pub(crate) mod provider;
