// SPDX-License-Identifier: GPL-2.0

//! The software IOMMU of the simulated platform, registered with the
//! kernel's IOMMU core for the devices of the `rsva_sim` bus.
//!
//! Route: `iommu_device_register_bus()` on a bus of our own, and devices
//! added with `iommu_mock_device_add()` (which points their fwspec at this
//! IOMMU), as the iommufd selftest's mock IOMMU does; both are exported when
//! `CONFIG_IOMMUFD_TEST=y`. See Documentation/simulated-platform.rst.
//!
//! Domains: the default domain is a static identity domain (DMA-API users
//! get direct mapping), the blocked domain is static and is also how the
//! core detaches a PASID ([`IommuDriver::block_pasid`]), SVA domains are
//! allocated per address space (`sva_domain.rs`), and paging domains
//! (`iommu_paging_domain_alloc()`, `IOMMU_DOMAIN_UNMANAGED`) can be
//! allocated and attached, as a kernel driver that manages its device's
//! DMA itself or VFIO does, but map nothing: the devices' DMA without a
//! PASID is not simulated. The ops, the static domains and the
//! registration are in `kext/iommu/`.

#![forbid(unsafe_code)]

use kernel::{
    device::Device,
    iommu::dma_owner::Group,
    mm::MmWithUser,
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow},
};

use crate::{
    device::SimDevice,
    kext::iommu::{
        domain::{PagingDomain, SvaDomain},
        driver::{IommuDriver, PageResponse, Registration},
        iopf::IopfPort,
    },
    sva_domain::{self, SimSvaDomain},
};

/// The platform's IOMMU driver. Its data of a device is the
/// [`SimDevice`] behind it.
pub(crate) struct SimIommuDriver;

/// The IOMMU, registered with the core while this lives, and its page
/// request queue.
pub(crate) type SimIommu = Registration<SimIommuDriver>;

#[vtable]
impl IommuDriver for SimIommuDriver {
    type DeviceData = Arc<SimDevice>;
    type SvaDomain = SimSvaDomain;

    /// Our devices are served by this IOMMU; another bus's are refused.
    /// The device keeps its port to the iopf queue for its page requests.
    fn probe_device(dev: &Device, iopf: IopfPort) -> Result<Arc<SimDevice>> {
        let sdev = SimDevice::of(dev).ok_or(ENODEV)?;
        sdev.set_iopf_port(iopf);
        Ok(sdev)
    }

    /// The group of the device, allocated with its first device.
    fn device_group(_dev: &Device, sdev: ArcBorrow<'_, SimDevice>) -> Result<ARef<Group>> {
        sdev.group.get()
    }

    /// Removes the PASID entry and detaches the SVA domain it had.
    fn block_pasid(
        _dev: &Device,
        sdev: ArcBorrow<'_, SimDevice>,
        pasid: u32,
        old: Option<&SvaDomain<SimSvaDomain>>,
    ) -> Result {
        sva_domain::block_pasid(&sdev, pasid, old);
        Ok(())
    }

    fn domain_alloc_sva(
        _dev: &Device,
        _sdev: ArcBorrow<'_, SimDevice>,
        mm: &MmWithUser,
    ) -> Result<Arc<SvaDomain<SimSvaDomain>>> {
        SimSvaDomain::alloc(mm)
    }

    /// A paging domain, which maps nothing.
    fn domain_alloc_paging(_dev: &Device, _sdev: ArcBorrow<'_, SimDevice>) -> Result<PagingDomain> {
        PagingDomain::new()
    }

    /// The answer to a page request group reaches the device that sent it.
    fn page_response(_dev: &Device, sdev: ArcBorrow<'_, SimDevice>, r: PageResponse) {
        sdev.page_response(r.pasid, r.grpid, r.code);
    }
}
