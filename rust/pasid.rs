// SPDX-License-Identifier: GPL-2.0

//! PASIDs: the ranges allocations draw from.
//!
//! A PASID (Process Address Space ID, PCIe 20 bits) names one address space
//! on a device. PASID 0 is reserved for DMA without a PASID (RID_PASID), so a
//! range that allocations may draw from is `[min, max]` with
//! `1 <= min <= max <= PASID_MAX`. The per-mm PASID service is built on this
//! type.

use kernel::prelude::*;

/// Width of a PCIe PASID in bits.
pub(crate) const PASID_BITS: u32 = 20;

/// The largest PASID a PCIe device can carry.
pub(crate) const PASID_MAX: u32 = (1 << PASID_BITS) - 1;

/// A range `[min, max]` of PASIDs, both ends included.
///
/// # Invariants
///
/// `1 <= min <= max <= PASID_MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PasidRange {
    min: u32,
    max: u32,
}

impl PasidRange {
    /// Every PASID a device may be given: `[1, PASID_MAX]`.
    // INVARIANT: 1 <= 1 <= PASID_MAX.
    pub(crate) const FULL: Self = Self {
        min: 1,
        max: PASID_MAX,
    };

    /// Makes the range `[min, max]`.
    ///
    /// Returns `EINVAL` when `min` is 0 (reserved for DMA without a PASID),
    /// when `max < min`, or when `max` does not fit in [`PASID_BITS`] bits.
    pub(crate) fn new(min: u32, max: u32) -> Result<Self> {
        if min == 0 || max < min || max > PASID_MAX {
            return Err(EINVAL);
        }
        // INVARIANT: checked just above.
        Ok(Self { min, max })
    }

    /// The smallest PASID of the range.
    pub(crate) fn min(&self) -> u32 {
        self.min
    }

    /// The largest PASID of the range.
    pub(crate) fn max(&self) -> u32 {
        self.max
    }

    /// How many PASIDs the range holds; at least 1, at most [`PASID_MAX`].
    pub(crate) fn count(&self) -> u32 {
        // No overflow: `min <= max` by the type invariant.
        self.max - self.min + 1
    }

    /// Whether `pasid` lies in the range.
    pub(crate) fn contains(&self, pasid: u32) -> bool {
        (self.min..=self.max).contains(&pasid)
    }
}

#[kunit_tests(rsva_pasid_range)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ranges() {
        let r = PasidRange::new(1, PASID_MAX);
        assert_eq!(r, Ok(PasidRange::FULL));
        assert_eq!(PasidRange::FULL.count(), PASID_MAX);

        let one = PasidRange::new(7, 7);
        assert!(one.is_ok());
        if let Ok(one) = one {
            assert_eq!(one.count(), 1);
            assert_eq!((one.min(), one.max()), (7, 7));
        }
    }

    #[test]
    fn rejects_invalid_ranges() {
        assert_eq!(PasidRange::new(0, 10), Err(EINVAL));
        assert_eq!(PasidRange::new(0, 0), Err(EINVAL));
        assert_eq!(PasidRange::new(10, 9), Err(EINVAL));
        assert_eq!(PasidRange::new(1, PASID_MAX + 1), Err(EINVAL));
        assert_eq!(PasidRange::new(u32::MAX, u32::MAX), Err(EINVAL));
    }

    #[test]
    fn contains_is_inclusive() {
        let r = PasidRange::new(16, 31);
        assert!(r.is_ok());
        if let Ok(r) = r {
            assert!(!r.contains(15));
            assert!(r.contains(16));
            assert!(r.contains(31));
            assert!(!r.contains(32));
            assert!(!r.contains(0));
        }
    }
}
