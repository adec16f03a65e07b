// SPDX-License-Identifier: GPL-2.0

//! The fault log of a simulated device: the IOMMU faults its DMA engine
//! raised, newest last, as an IOMMU's fault reporting queue holds them.

#![forbid(unsafe_code)]

use core::fmt;

use kernel::prelude::*;

/// Number of faults kept.
pub(crate) const FAULT_LOG_LEN: usize = 32;

/// Why a translation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultReason {
    /// No PASID table entry: never bound, or unbound.
    NoPasid,
    /// The entry was torn down by the mm's release with faults ignored
    /// (Intel): the process is exiting. Not reported.
    PasidCleared,
    /// The entry aborts every access since the mm's release (SMMUv3's
    /// EPD0 context descriptor). Not reported.
    Aborted,
    /// The address space has no users left (mmget_not_zero failed).
    MmGone,
    /// The page walk found no mapping allowing the access.
    NotMapped,
    /// The page walk found the page not present (or not writable for a
    /// write) and the descriptor reports rather than blocks: a partial
    /// completion, not an IOMMU fault, so not logged.
    NotPresent,
    /// A page request for the access was answered other than SUCCESS (or
    /// could not be sent).
    RequestDenied,
    /// Invalidations overtook every page walk of the access: it was not
    /// done (a real IOMMU's invalidation waits for translated DMA).
    WalkRaced,
    /// An IOTLB entry pointed at a page that was already freed: the IOMMU
    /// missed an invalidation. Always a bug.
    StaleTranslation,
}

impl FaultReason {
    /// Whether the IOMMU reports the fault (into the fault log); the DMA
    /// fails either way.
    pub(crate) fn reported(self) -> bool {
        !matches!(self, Self::PasidCleared | Self::Aborted | Self::NotPresent)
    }

    fn name(self) -> &'static str {
        match self {
            Self::NoPasid => "no-pasid",
            Self::PasidCleared => "pasid-cleared",
            Self::Aborted => "abort",
            Self::MmGone => "mm-gone",
            Self::NotMapped => "not-mapped",
            Self::NotPresent => "not-present",
            Self::RequestDenied => "request-denied",
            Self::WalkRaced => "walk-raced",
            Self::StaleTranslation => "stale-translation",
        }
    }
}

/// One fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) pasid: u32,
    pub(crate) addr: u64,
    pub(crate) write: bool,
    pub(crate) reason: FaultReason,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pasid {} addr {:#x} {} {}",
            self.pasid,
            self.addr,
            if self.write { "write" } else { "read" },
            self.reason.name()
        )
    }
}

/// The last [`FAULT_LOG_LEN`] faults and how many there were in all.
pub(crate) struct FaultLog {
    ring: [Option<Fault>; FAULT_LOG_LEN],
    total: u64,
}

impl FaultLog {
    /// An empty log.
    pub(crate) const fn new() -> Self {
        Self {
            ring: [None; FAULT_LOG_LEN],
            total: 0,
        }
    }

    /// Records `fault`, forgetting the oldest when full.
    pub(crate) fn push(&mut self, fault: Fault) {
        // The remainder is below FAULT_LOG_LEN, so it fits in usize.
        let i = (self.total % FAULT_LOG_LEN as u64) as usize;
        self.ring[i] = Some(fault);
        self.total += 1;
    }

    /// How many faults were recorded since the device was created.
    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// The faults kept, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Fault> {
        let start = if self.total > FAULT_LOG_LEN as u64 {
            (self.total % FAULT_LOG_LEN as u64) as usize
        } else {
            0
        };
        (0..FAULT_LOG_LEN).filter_map(move |k| self.ring[(start + k) % FAULT_LOG_LEN].as_ref())
    }
}

#[kunit_tests(rsva_sim_fault_log)]
mod tests {
    use super::*;

    fn fault(addr: u64) -> Fault {
        Fault {
            pasid: 1,
            addr,
            write: false,
            reason: FaultReason::NotMapped,
        }
    }

    #[test]
    fn keeps_order_and_counts() {
        let mut log = FaultLog::new();
        assert_eq!(log.iter().count(), 0);
        log.push(fault(1));
        log.push(fault(2));
        let addrs: KVec<u64> = {
            let mut v = KVec::new();
            for f in log.iter() {
                assert!(v.push(f.addr, GFP_KERNEL).is_ok());
            }
            v
        };
        assert_eq!(&addrs[..], &[1, 2]);
        assert_eq!(log.total(), 2);
    }

    #[test]
    fn forgets_the_oldest_when_full() {
        let mut log = FaultLog::new();
        let n = FAULT_LOG_LEN as u64 + 5;
        for a in 0..n {
            log.push(fault(a));
        }
        assert_eq!(log.total(), n);
        assert_eq!(log.iter().count(), FAULT_LOG_LEN);
        assert_eq!(log.iter().next().map(|f| f.addr), Some(5));
        assert_eq!(log.iter().last().map(|f| f.addr), Some(n - 1));
    }
}
