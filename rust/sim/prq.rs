// SPDX-License-Identifier: GPL-2.0

//! The page request interface of a simulated device (PCIe PRI, or an SMMU
//! stall): how the device asks the OS to make pages present and waits for
//! the answer.
//!
//! When the device's page walk finds a page not present (or not writable,
//! for a write), it sends a page request group: up to [`GROUP_PAGES`]
//! pages, the faulting one last with the last-page flag, through the
//! kernel's real machinery (`iommu_report_device_fault()`, which queues the
//! group on the SVA domain's `iopf_handler`). The handler (the C core's or
//! rsva's) answers once per group with `iopf_group_response()`, which comes
//! back to the IOMMU's `page_response` op and so to [`PendingTable::answer`].
//! The engine sleeps until then (block on fault).
//!
//! Every group is accounted for: one response each (`stray` counts responses
//! that match no pending group, a duplicate or a response to nothing), none
//! left unanswered when the PASID is drained at detach (`undrained`), none
//! given up on (`timeouts`). All three are bugs and stay zero in the tests.

#![forbid(unsafe_code)]

use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// Pages in one page request group at most.
pub(crate) const GROUP_PAGES: usize = 4;

/// Page request groups a device may have outstanding at once (PRI's
/// outstanding page request allocation).
pub(crate) const SLOTS: usize = 32;

/// Group indices are 9 bits wide (PCIe PRG index).
const GRPID_SPACE: u32 = 512;

/// How long the engine waits for a response before giving up (a bug of
/// the fault handler, counted as a timeout).
pub(crate) const RESPONSE_TIMEOUT_MS: u32 = 10_000;

/// What the OS answered to a page request group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Response {
    /// `IOMMU_PAGE_RESP_SUCCESS`: the pages are present, retry.
    Success,
    /// `IOMMU_PAGE_RESP_INVALID`: the access is not allowed.
    Invalid,
    /// `IOMMU_PAGE_RESP_FAILURE`: the request could not be handled.
    Failure,
}

impl Response {
    /// From an `enum iommu_page_response_code`.
    pub(crate) fn from_code(code: u32) -> Self {
        match code {
            kernel::bindings::iommu_page_response_code_IOMMU_PAGE_RESP_SUCCESS => Self::Success,
            kernel::bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID => Self::Invalid,
            _ => Self::Failure,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Free,
    Waiting,
    Answered(Response),
}

#[derive(Clone, Copy)]
struct Slot {
    pasid: u32,
    grpid: u32,
    state: State,
}

/// The outstanding page request groups of a device, by slot.
pub(crate) struct PendingTable {
    slots: [Slot; SLOTS],
    next_grpid: u32,
}

/// What [`PendingTable::answer`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A waiting group was answered.
    Delivered,
    /// No group waits with this PASID and index.
    Stray,
}

impl PendingTable {
    /// No group outstanding.
    pub(crate) const fn new() -> Self {
        Self {
            slots: [Slot {
                pasid: 0,
                grpid: 0,
                state: State::Free,
            }; SLOTS],
            next_grpid: 0,
        }
    }

    /// Takes a slot for a new group of `pasid`: its slot and group index,
    /// an index no outstanding group uses. `None` when every slot is taken.
    pub(crate) fn alloc(&mut self, pasid: u32) -> Option<(usize, u32)> {
        let slot = self.slots.iter().position(|s| s.state == State::Free)?;
        // At most SLOTS - 1 indices are in use, so this ends.
        let mut grpid = self.next_grpid;
        while self
            .slots
            .iter()
            .any(|s| s.state != State::Free && s.grpid == grpid)
        {
            grpid = (grpid + 1) % GRPID_SPACE;
        }
        self.next_grpid = (grpid + 1) % GRPID_SPACE;
        self.slots[slot] = Slot {
            pasid,
            grpid,
            state: State::Waiting,
        };
        Some((slot, grpid))
    }

    /// Records the response to the group `grpid` of `pasid`.
    pub(crate) fn answer(&mut self, pasid: u32, grpid: u32, r: Response) -> Answer {
        match self
            .slots
            .iter_mut()
            .find(|s| s.state == State::Waiting && s.pasid == pasid && s.grpid == grpid)
        {
            Some(s) => {
                s.state = State::Answered(r);
                Answer::Delivered
            }
            None => Answer::Stray,
        }
    }

    /// The response to the group in `slot`, freeing the slot, or `None`
    /// while it waits.
    pub(crate) fn take(&mut self, slot: usize) -> Option<Response> {
        match self.slots.get(slot)?.state {
            State::Answered(r) => {
                self.slots[slot].state = State::Free;
                Some(r)
            }
            _ => None,
        }
    }

    /// Gives the slot up without a response (timeout).
    pub(crate) fn abandon(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.state = State::Free;
        }
    }

    /// Answers every group of `pasid` still waiting with `r`; returns how
    /// many there were.
    pub(crate) fn answer_all(&mut self, pasid: u32, r: Response) -> u64 {
        let mut n = 0;
        for s in self.slots.iter_mut() {
            if s.state == State::Waiting && s.pasid == pasid {
                s.state = State::Answered(r);
                n += 1;
            }
        }
        n
    }
}

/// Counters of the page request interface of a device.
pub(crate) struct PrqCounters {
    /// Pages requested.
    pub(crate) requests: Atomic<u64>,
    /// Groups sent.
    pub(crate) groups: Atomic<u64>,
    pub(crate) success: Atomic<u64>,
    pub(crate) invalid: Atomic<u64>,
    pub(crate) failure: Atomic<u64>,
    /// Responses to no pending group. Always a bug.
    pub(crate) stray: Atomic<u64>,
    /// Groups unanswered after their PASID's drain. Always a bug.
    pub(crate) undrained: Atomic<u64>,
    /// Groups the engine gave up waiting for. Always a bug.
    pub(crate) timeouts: Atomic<u64>,
}

impl PrqCounters {
    pub(crate) fn new() -> Self {
        Self {
            requests: Atomic::new(0),
            groups: Atomic::new(0),
            success: Atomic::new(0),
            invalid: Atomic::new(0),
            failure: Atomic::new(0),
            stray: Atomic::new(0),
            undrained: Atomic::new(0),
            timeouts: Atomic::new(0),
        }
    }

    /// Counts a response by its code.
    pub(crate) fn count(&self, r: Response) {
        match r {
            Response::Success => self.success.add(1, Relaxed),
            Response::Invalid => self.invalid.add(1, Relaxed),
            Response::Failure => self.failure.add(1, Relaxed),
        }
    }
}

#[kunit_tests(rsva_sim_prq)]
mod tests {
    use super::*;

    #[test]
    fn one_answer_per_group() {
        let mut t = PendingTable::new();
        let (slot, grpid) = t.alloc(7).unwrap_or((usize::MAX, 0));
        assert_eq!(t.take(slot), None);
        // Another PASID with the same index is not this group.
        assert_eq!(t.answer(8, grpid, Response::Success), Answer::Stray);
        assert_eq!(t.answer(7, grpid, Response::Success), Answer::Delivered);
        // A duplicate is stray.
        assert_eq!(t.answer(7, grpid, Response::Invalid), Answer::Stray);
        assert_eq!(t.take(slot), Some(Response::Success));
        assert_eq!(t.take(slot), None);
    }

    #[test]
    fn indices_of_outstanding_groups_differ() {
        let mut t = PendingTable::new();
        let mut seen = [false; GRPID_SPACE as usize];
        for _ in 0..SLOTS {
            let got = t.alloc(1);
            assert!(got.is_some());
            if let Some((_, g)) = got {
                assert!(g < GRPID_SPACE);
                assert!(!seen[g as usize]);
                seen[g as usize] = true;
            }
        }
        assert_eq!(t.alloc(1), None);
    }

    #[test]
    fn drain_answers_only_its_pasid() {
        let mut t = PendingTable::new();
        let (a, _) = t.alloc(1).unwrap_or((usize::MAX, 0));
        let (b, gb) = t.alloc(2).unwrap_or((usize::MAX, 0));
        assert_eq!(t.answer_all(1, Response::Invalid), 1);
        assert_eq!(t.take(a), Some(Response::Invalid));
        assert_eq!(t.take(b), None);
        assert_eq!(t.answer(2, gb, Response::Success), Answer::Delivered);
        t.abandon(b);
        assert_eq!(t.take(b), None);
    }
}
