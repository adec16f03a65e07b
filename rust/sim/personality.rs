// SPDX-License-Identifier: GPL-2.0

//! The personality of the simulated IOMMU: which real driver's SVA domains
//! it imitates, chosen at load with the `iommu` parameter (`intel`, the
//! default, `amd` or `arm`). Every difference between the drivers that the
//! simulator models is decided here, from the Linux 7.3 sources:
//!
//! - Intel, drivers/iommu/intel/svm.c: `intel_svm_domain_free()` calls
//!   `mmu_notifier_put()`, the memory goes in `intel_mm_free_notifier()`;
//!   `intel_mm_release()` tears every PASID entry down with
//!   `intel_pasid_tear_down_entry(.., fault_ignore = true)`: not present,
//!   Fault Processing Disabled, so DMA fails and no fault is reported;
//!   `blocking_domain_set_dev_pasid()` tears the entry down with faults
//!   reported and drains the page requests of the PASID
//!   (`intel_iommu_drain_pasid_prq()`).
//! - AMD, drivers/iommu/amd/pasid.c: `iommu_sva_domain_free()` calls
//!   `mmu_notifier_unregister()`, which waits for an SRCU grace period, and
//!   frees the domain right after; `sva_mn_release()` removes every
//!   (device, PASID) of the domain (`remove_dev_pasid()`: GCR3 entry
//!   cleared, IOTLB flushed, the domain forgets the PASID), so later DMA
//!   faults as on a PASID never bound; `amd_iommu_remove_dev_pasid()` does
//!   the same for one PASID.
//! - SMMUv3, drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3-sva.c:
//!   `arm_smmu_sva_domain_free()` calls `mmu_notifier_put()`, the memory
//!   goes in `arm_smmu_mmu_notifier_free()`; `arm_smmu_mm_release()` writes
//!   a context descriptor made by `arm_smmu_make_sva_cd(.., NULL, ..)`:
//!   valid, EPD0 set, stall and fault recording off, so DMA aborts and no
//!   event is recorded; `arm_smmu_blocking_set_dev_pasid()` clears the CD
//!   (`arm_smmu_clear_cd()`), after which DMA faults with a report.
//!
//! See Documentation/simulated-platform.rst for what is not modelled.

#![forbid(unsafe_code)]

use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use crate::{fault_log::FaultReason, glue};

/// The IOMMU driver whose SVA domains the simulator imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Personality {
    /// Intel VT-d (the default).
    Intel,
    /// AMD-Vi.
    Amd,
    /// Arm SMMUv3.
    Arm,
}

/// How an SVA domain's `free` gives its mmu notifier back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NotifierEnd {
    /// `mmu_notifier_put()`; the memory goes in `free_notifier`, after an
    /// SRCU grace period (Intel, SMMUv3).
    Put,
    /// `mmu_notifier_unregister()`, which runs `synchronize_srcu()`, then
    /// the memory is freed at once (AMD). Illegal inside an mmu notifier
    /// callback: lockdep reports it and the caller never returns.
    Unregister,
}

/// How an entry that the mm's release blocked refuses DMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// Intel: not present, with Fault Processing Disabled.
    FaultsIgnored,
    /// SMMUv3: a valid context descriptor with EPD0 that aborts, without
    /// recording the fault.
    Abort,
}

impl Blocked {
    /// The fault an access through the entry gets; never reported.
    pub(crate) fn fault(self) -> FaultReason {
        match self {
            Self::FaultsIgnored => FaultReason::PasidCleared,
            Self::Abort => FaultReason::Aborted,
        }
    }

    /// The entry's state as debugfs shows it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::FaultsIgnored => "cleared",
            Self::Abort => "abort",
        }
    }
}

/// What the mm's release does to each (device, PASID) of a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnRelease {
    /// The entry stays, blocked, until the PASID is detached (Intel,
    /// SMMUv3).
    Block(Blocked),
    /// The entry is removed and the domain forgets the PASID (AMD).
    Remove,
}

/// The personality chosen at load, as `Personality as u32`.
static CURRENT: Atomic<u32> = Atomic::new(Personality::Intel as u32);

impl Personality {
    const ALL: [Self; 3] = [Self::Intel, Self::Amd, Self::Arm];

    /// Reads the `iommu` parameter and makes it the current personality;
    /// `-EINVAL` for an unknown name.
    pub(crate) fn init_from_param() -> Result<Self> {
        let name = glue::iommu_param();
        let Some(p) = Self::ALL
            .into_iter()
            .find(|p| p.name().as_bytes() == name.to_bytes())
        else {
            pr_err!("iommu={name:?}: expected intel, amd or arm\n");
            return Err(EINVAL);
        };
        CURRENT.store(p as u32, Relaxed);
        Ok(p)
    }

    /// The personality chosen at load (Intel before that).
    pub(crate) fn current() -> Self {
        let v = CURRENT.load(Relaxed);
        Self::ALL
            .into_iter()
            .find(|p| *p as u32 == v)
            .unwrap_or(Self::Intel)
    }

    /// The name the parameter and debugfs use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Intel => "intel",
            Self::Amd => "amd",
            Self::Arm => "arm",
        }
    }

    /// How `free` gives the domain's notifier back.
    pub(crate) fn notifier_end(self) -> NotifierEnd {
        match self {
            Self::Intel | Self::Arm => NotifierEnd::Put,
            Self::Amd => NotifierEnd::Unregister,
        }
    }

    /// What the mm's release does to the domain's PASIDs.
    pub(crate) fn on_release(self) -> OnRelease {
        match self {
            Self::Intel => OnRelease::Block(Blocked::FaultsIgnored),
            Self::Arm => OnRelease::Block(Blocked::Abort),
            Self::Amd => OnRelease::Remove,
        }
    }
}
