// SPDX-License-Identifier: GPL-2.0

//! PASIDs of the system-wide space, for SVA providers.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use kernel::{
    bindings,
    error::to_result,
    mm::{Mm, MmWithUser},
    prelude::*,
};

use crate::kext::glue;

/// `IOMMU_PASID_INVALID`: no PASID (bindgen types the C macro as `i32`).
pub(crate) const PASID_INVALID: u32 = u32::MAX;

/// The PASID an mm has (`mm->iommu_mm->pasid`), or [`PASID_INVALID`].
pub(crate) fn mm_pasid(mm: &MmWithUser) -> u32 {
    // SAFETY: `mm` is live; the helper only reads.
    unsafe { glue::rsva_mm_pasid(mm.as_raw()) }
}

/// A PASID taken from the system-wide space; freed when dropped, in any
/// context, unless given to an mm.
pub(crate) struct GlobalPasid(u32);

impl GlobalPasid {
    /// Allocates a free PASID in `[min, max]` (patch 0004), or fails with
    /// `ENOSPC`.
    pub(crate) fn alloc(min: u32, max: u32) -> Result<Self> {
        // SAFETY: Allocates from the global IDA; no pointers involved.
        let pasid = unsafe { bindings::iommu_alloc_global_pasid_range(min, max) };
        if pasid == PASID_INVALID {
            return Err(ENOSPC);
        }
        Ok(Self(pasid))
    }

    /// Publishes the PASID as `mm`'s; the IOMMU core frees it from now on.
    /// `EBUSY` if the mm has a PASID already, or cannot share its page
    /// tables with a device (x86 LAM); `ENOMEM`.
    pub(crate) fn give_to(self, mm: &MmWithUser) -> Result<u32> {
        // SAFETY: `mm` is a live mm; the helper checks it has no PASID yet.
        to_result(unsafe { glue::rsva_mm_set_pasid(mm.as_raw(), self.0) })?;
        let pasid = self.0;
        core::mem::forget(self);
        Ok(pasid)
    }
}

impl Drop for GlobalPasid {
    fn drop(&mut self) {
        // SAFETY: Allocated in `alloc` and not given away (`give_to` forgets
        // it); `iommu_free_global_pasid()` may be called in any context.
        unsafe { bindings::iommu_free_global_pasid(self.0) };
    }
}

/// Puts `mm` on the IOMMU core's list of SVA mms, whose secondary TLBs are
/// flushed when kernel page tables change (patch 0003).
///
/// # Safety
///
/// `mm` has a PASID (`mm->iommu_mm` is set) and is not on the list; the
/// caller serialises this with [`untrack_mm`] of the same mm.
pub(crate) unsafe fn track_mm(mm: &Mm) {
    // SAFETY: By the safety requirements; `mm->iommu_mm` lives as long as
    // the mm, which `&Mm` keeps.
    unsafe { bindings::iommu_sva_track_mm(mm.as_raw()) };
}

/// Takes `mm` off the IOMMU core's list of SVA mms.
///
/// # Safety
///
/// `mm` is on the list ([`track_mm`]); the caller serialises this with
/// [`track_mm`] of the same mm.
pub(crate) unsafe fn untrack_mm(mm: &Mm) {
    // SAFETY: By the safety requirements, as in `track_mm`.
    unsafe { bindings::iommu_sva_untrack_mm(mm.as_raw()) };
}
