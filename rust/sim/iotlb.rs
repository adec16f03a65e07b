// SPDX-License-Identifier: GPL-2.0

//! The IOTLB of a simulated device: a small fully associative cache of
//! translations `(PASID, virtual page) -> physical page`, as an IOMMU keeps,
//! replacing entries round-robin when full. Being fully associative, a
//! translation stays cached until it is invalidated or 64 newer ones pushed
//! it out, so the tests know which translations are still cached.
//!
//! Like a real one, it holds no reference on the pages it caches: a cached
//! translation is only right until the IOMMU is told to invalidate it, which
//! the SVA domain's mmu notifier does before the CPU page tables change (see
//! `sva_domain.rs`). Every invalidation bumps a sequence number; a page walk
//! that began before the bump must not be cached, which closes the race
//! between a walk and a concurrent invalidation the way
//! `mmu_interval_read_retry()` does for HMM.
//!
//! The IOTLB also remembers the last [`RECENT`] invalidations, so that the
//! device can tell whether one of them covered a page it walked
//! ([`Iotlb::invalidated_since`]): the honesty check that no DMA uses a
//! page whose invalidation raced its walk.

#![forbid(unsafe_code)]

use kernel::prelude::*;

/// Number of entries.
pub(crate) const IOTLB_ENTRIES: usize = 64;

/// Number of invalidations remembered.
pub(crate) const RECENT: usize = 64;

/// One invalidation: the pages `first..=last` of `pasid`.
#[derive(Clone, Copy, Default)]
struct Invalidation {
    pasid: u32,
    first: u64,
    last: u64,
}

#[derive(Clone, Copy)]
struct Entry<P> {
    valid: bool,
    writable: bool,
    pasid: u32,
    vpn: u64,
    /// `Some` when `valid`.
    pfn: Option<P>,
}

/// Counters of an IOTLB, for debugfs and the stats ioctl.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct IotlbStats {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) flushes: u64,
    pub(crate) stale_walks: u64,
}

/// A fully associative translation cache. Callers serialise access (the device
/// keeps it under a spinlock, so that an invalidation also waits for an
/// access that is using a translation, as an IOMMU's invalidation-wait does).
///
/// `P` is what a translation gives: the device caches the page frame
/// numbers of walked pages (`kext::mm::remote::Pfn`).
pub(crate) struct Iotlb<P = u64> {
    entries: [Entry<P>; IOTLB_ENTRIES],
    /// The entry replaced next when every entry is valid.
    victim: usize,
    seq: u64,
    /// The invalidation that moved `seq` from `s` to `s + 1` is at
    /// `s % RECENT`, for the last `RECENT` of them.
    recent: [Invalidation; RECENT],
    stats: IotlbStats,
}

impl<P: Copy> Iotlb<P> {
    /// An empty IOTLB.
    pub(crate) const fn new() -> Self {
        Self {
            entries: [Entry {
                valid: false,
                writable: false,
                pasid: 0,
                vpn: 0,
                pfn: None,
            }; IOTLB_ENTRIES],
            victim: 0,
            seq: 0,
            recent: [Invalidation {
                pasid: 0,
                first: 0,
                last: 0,
            }; RECENT],
            stats: IotlbStats {
                hits: 0,
                misses: 0,
                flushes: 0,
                stale_walks: 0,
            },
        }
    }

    fn find(&self, pasid: u32, vpn: u64) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.valid && e.pasid == pasid && e.vpn == vpn)
    }

    /// The cached page frame for `(pasid, vpn)`, if any and if it allows
    /// the access (`write`); counts a hit or a miss.
    pub(crate) fn lookup(&mut self, pasid: u32, vpn: u64, write: bool) -> Option<P> {
        match self.find(pasid, vpn).map(|i| self.entries[i]) {
            Some(e) if e.writable || !write => {
                self.stats.hits += 1;
                e.pfn
            }
            _ => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// The cached page frame for `(pasid, vpn)` if it allows the access,
    /// counting nothing (see [`Iotlb::count_hits`]).
    pub(crate) fn peek(&self, pasid: u32, vpn: u64, write: bool) -> Option<P> {
        match self.find(pasid, vpn).map(|i| self.entries[i]) {
            Some(e) if e.writable || !write => e.pfn,
            _ => None,
        }
    }

    /// Counts `n` hits of [`Iotlb::peek`].
    pub(crate) fn count_hits(&mut self, n: u64) {
        self.stats.hits += n;
    }

    /// The invalidation sequence number, to be read before a page walk.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Caches a translation found by a walk that began at sequence `seq`.
    /// Returns `false`, caching nothing, when an invalidation came since.
    pub(crate) fn insert(
        &mut self,
        seq: u64,
        pasid: u32,
        vpn: u64,
        pfn: P,
        writable: bool,
    ) -> bool {
        if seq != self.seq {
            self.stats.stale_walks += 1;
            return false;
        }
        let slot = match self.find(pasid, vpn) {
            Some(i) => i,
            None => match self.entries.iter().position(|e| !e.valid) {
                Some(i) => i,
                None => {
                    let i = self.victim;
                    self.victim = (i + 1) % IOTLB_ENTRIES;
                    i
                }
            },
        };
        self.entries[slot] = Entry {
            valid: true,
            writable,
            pasid,
            vpn,
            pfn: Some(pfn),
        };
        true
    }

    /// Invalidates the translations of the pages `first..=last` of `pasid`.
    fn invalidate(&mut self, pasid: u32, first: u64, last: u64) {
        for e in self.entries.iter_mut() {
            if e.valid && e.pasid == pasid && (first..=last).contains(&e.vpn) {
                e.valid = false;
            }
        }
        self.recent[(self.seq % RECENT as u64) as usize] = Invalidation { pasid, first, last };
        self.seq = self.seq.wrapping_add(1);
        self.stats.flushes += 1;
    }

    /// Invalidates the translations of `pasid` for addresses in
    /// `[start, end)`; `end == u64::MAX` means to the end of the space.
    pub(crate) fn flush_range(&mut self, pasid: u32, start: u64, end: u64) {
        let first = start >> kernel::page::PAGE_SHIFT;
        let last = end.saturating_sub(1) >> kernel::page::PAGE_SHIFT;
        self.invalidate(pasid, first, last);
    }

    /// Invalidates every translation of `pasid`.
    pub(crate) fn flush_pasid(&mut self, pasid: u32) {
        self.invalidate(pasid, 0, u64::MAX);
    }

    /// Whether an invalidation since sequence `seq` covered page `vpn` of
    /// `pasid`. When more than [`RECENT`] came since, the oldest are
    /// forgotten and the answer is yes.
    pub(crate) fn invalidated_since(&self, seq: u64, pasid: u32, vpn: u64) -> bool {
        let n = self.seq.wrapping_sub(seq);
        if n > RECENT as u64 {
            return true;
        }
        (0..n).any(|k| {
            let i = &self.recent[(seq.wrapping_add(k) % RECENT as u64) as usize];
            i.pasid == pasid && (i.first..=i.last).contains(&vpn)
        })
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> IotlbStats {
        self.stats
    }

    /// How many entries hold a translation.
    pub(crate) fn occupancy(&self) -> usize {
        self.entries.iter().filter(|e| e.valid).count()
    }
}

#[kunit_tests(rsva_sim_iotlb)]
mod tests {
    use super::*;

    #[test]
    fn caches_what_was_inserted() {
        let mut t = Iotlb::<u64>::new();
        assert_eq!(t.lookup(5, 0x10, false), None);
        let seq = t.seq();
        assert!(t.insert(seq, 5, 0x10, 0x1234, false));
        assert_eq!(t.lookup(5, 0x10, false), Some(0x1234));
        // Another PASID, the same page: not the same address space.
        assert_eq!(t.lookup(6, 0x10, false), None);
        assert_eq!(t.stats().hits, 1);
        assert_eq!(t.stats().misses, 2);
    }

    #[test]
    fn peek_counts_nothing() {
        let mut t = Iotlb::<u64>::new();
        let seq = t.seq();
        assert!(t.insert(seq, 2, 9, 90, false));
        assert_eq!(t.peek(2, 9, false), Some(90));
        assert_eq!(t.peek(2, 9, true), None);
        assert_eq!(t.peek(2, 8, false), None);
        assert_eq!((t.stats().hits, t.stats().misses), (0, 0));
        t.count_hits(2);
        assert_eq!(t.stats().hits, 2);
    }

    #[test]
    fn read_only_translation_does_not_serve_a_write() {
        let mut t = Iotlb::<u64>::new();
        let seq = t.seq();
        assert!(t.insert(seq, 1, 7, 70, false));
        assert_eq!(t.lookup(1, 7, true), None);
        let seq = t.seq();
        assert!(t.insert(seq, 1, 7, 70, true));
        assert_eq!(t.lookup(1, 7, true), Some(70));
    }

    #[test]
    fn flush_range_drops_only_the_range() {
        let mut t = Iotlb::<u64>::new();
        for vpn in 0..8u64 {
            let seq = t.seq();
            assert!(t.insert(seq, 3, vpn, 100 + vpn, true));
        }
        let page = 1u64 << kernel::page::PAGE_SHIFT;
        t.flush_range(3, 2 * page, 5 * page);
        for vpn in 0..8u64 {
            let cached = t.lookup(3, vpn, false).is_some();
            assert_eq!(cached, !(2..5).contains(&vpn));
        }
        t.flush_range(3, 0, u64::MAX);
        assert_eq!(t.occupancy(), 0);
    }

    #[test]
    fn flush_pasid_keeps_other_address_spaces() {
        let mut t = Iotlb::<u64>::new();
        let seq = t.seq();
        assert!(t.insert(seq, 1, 1, 11, true));
        let seq = t.seq();
        assert!(t.insert(seq, 2, 2, 22, true));
        t.flush_pasid(1);
        assert_eq!(t.lookup(1, 1, false), None);
        assert_eq!(t.lookup(2, 2, false), Some(22));
    }

    #[test]
    fn keeps_every_translation_until_full_then_replaces_round_robin() {
        let mut t = Iotlb::<u64>::new();
        let n = IOTLB_ENTRIES as u64;
        for vpn in 0..n {
            let seq = t.seq();
            assert!(t.insert(seq, 1, vpn, vpn, false));
        }
        assert_eq!(t.occupancy(), IOTLB_ENTRIES);
        assert!((0..n).all(|vpn| t.lookup(1, vpn, false) == Some(vpn)));
        // Full: the next one replaces the first inserted, nothing else.
        let seq = t.seq();
        assert!(t.insert(seq, 1, n, n, false));
        assert_eq!(t.lookup(1, 0, false), None);
        assert!((1..=n).all(|vpn| t.lookup(1, vpn, false) == Some(vpn)));
    }

    #[test]
    fn knows_which_invalidations_covered_a_page() {
        let mut t = Iotlb::<u64>::new();
        let page = 1u64 << kernel::page::PAGE_SHIFT;
        let seq = t.seq();
        assert!(!t.invalidated_since(seq, 1, 3));
        t.flush_range(1, 2 * page, 4 * page);
        t.flush_pasid(2);
        assert!(t.invalidated_since(seq, 1, 3));
        assert!(!t.invalidated_since(seq, 1, 4));
        assert!(t.invalidated_since(seq, 2, 4));
        let later = t.seq();
        assert!(!t.invalidated_since(later, 1, 3));
        for _ in 0..RECENT {
            t.flush_pasid(9);
        }
        // Forgotten: assumed covered.
        assert!(t.invalidated_since(seq, 1, 7));
    }

    #[test]
    fn walk_raced_by_an_invalidation_is_not_cached() {
        let mut t = Iotlb::<u64>::new();
        let seq = t.seq();
        // The CPU page table changes while the walk runs.
        t.flush_range(9, 0, u64::MAX);
        assert!(!t.insert(seq, 9, 4, 44, true));
        assert_eq!(t.lookup(9, 4, false), None);
        assert_eq!(t.stats().stale_walks, 1);
    }
}
