// SPDX-License-Identifier: GPL-2.0

//! I/O page faults on rsva's SVA domains, served in Rust.
//!
//! A device that misses a translation of a PASID sends page requests; the
//! IOMMU driver reports them with `iommu_report_device_fault()`, which
//! collects the requests of one group (up to the one marked
//! `LAST_PAGE`) into a `struct iopf_group` and calls the `iopf_handler` of
//! the domain attached to the PASID. For the SVA domains rsva allocates
//! that handler is [`handler`], which does what the core's
//! `iommu_sva_iopf_handler()` does: it queues the group on the iopf queue's
//! own workqueue. That queue is the one IOMMU drivers drain with
//! `iopf_queue_flush_dev()` before a PASID is detached, so no fault of a
//! PASID is served after its unbind returned.
//!
//! The work item serves the requests in order with the semantics of
//! `iommu_sva_handle_mm()`: a request needs a valid PASID, the mm must have
//! users (`mmget_not_zero()`, taken once per group), the VMA must allow the
//! access asked for, and `handle_mm_fault()` must not fail. Errors are
//! sticky: after the first request that is not served, the rest of the
//! group is not handled. The group gets exactly one response, then is
//! freed.
//!
//! Beyond the C handler, a request is first served under the per-VMA lock
//! (`lock_vma_under_rcu()`, `FAULT_FLAG_VMA_LOCK`); when there is none, or
//! `handle_mm_fault()` answers `VM_FAULT_RETRY` (it then released the VMA
//! lock), under the mmap lock, without `FAULT_FLAG_ALLOW_RETRY` as the C
//! handler. Consecutive requests of a group in one VMA are served under one
//! hold of the lock. The last user reference of the mm is dropped with
//! `mmput_async()`: `exit_mmap()` never runs on the iopf workqueue, where a
//! release that unbinds (a driver's stop callback) would flush that
//! workqueue from inside it.
//!
//! The raw part (the `iopf_group`, its fault list, the handler and its work
//! item, `handle_mm_fault()`) is in the abstraction layer
//! (`kext/iommu/iopf.rs`, `kext/mm/fault.rs`); this file is the serving
//! logic.

#![forbid(unsafe_code)]

use kernel::{
    mm::{
        virt::{flags as vm, vm_flags_t},
        Mm, MmWithUser, MmapReadGuard, VmaReadGuard,
    },
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use crate::kext::{
    iommu::iopf::{perm, Group, IopfServer, PageRequest, Response},
    mm::fault::{
        fault_in_locked_vma, fault_in_mmap_locked, flags as fault, VmFault, VmaSpan,
        VM_FAULT_COMPLETED, VM_FAULT_ERROR, VM_FAULT_RETRY,
    },
};

/// The fault counters of `debugfs/rsva/sva`.
pub(crate) struct Counters {
    /// Groups rsva's work item took from the iopf queue.
    pub(crate) groups: Atomic<u64>,
    /// Page requests in those groups, served or not.
    pub(crate) faults: Atomic<u64>,
    /// Responses to groups, by code: one per group.
    pub(crate) resp_success: Atomic<u64>,
    pub(crate) resp_invalid: Atomic<u64>,
    /// Always 0: rsva's work item answers every group it takes with
    /// success or invalid (a group it could not queue is answered by the
    /// core); kept in `debugfs/rsva/sva` for its format.
    pub(crate) resp_failure: Atomic<u64>,
    /// Requests decided under the per-VMA lock.
    pub(crate) vma_lock: Atomic<u64>,
    /// Requests decided under the mmap lock.
    pub(crate) mmap_lock: Atomic<u64>,
}

/// The counters of every group rsva served.
pub(crate) static COUNTERS: Counters = Counters {
    groups: Atomic::new(0),
    faults: Atomic::new(0),
    resp_success: Atomic::new(0),
    resp_invalid: Atomic::new(0),
    resp_failure: Atomic::new(0),
    vma_lock: Atomic::new(0),
    mmap_lock: Atomic::new(0),
};

// The fault-serving logic: safe code.

/// The response to a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Every request was served: the device retries the translation.
    Success,
    /// A request cannot be served: the device does not retry.
    Invalid,
}

impl Status {
    fn response(self) -> Response {
        match self {
            Status::Success => Response::Success,
            Status::Invalid => Response::Invalid,
        }
    }

    fn counter(self) -> &'static Atomic<u64> {
        match self {
            Status::Success => &COUNTERS.resp_success,
            Status::Invalid => &COUNTERS.resp_invalid,
        }
    }
}

/// The fault flags [`Access`] may hold: never `FAULT_FLAG_ALLOW_RETRY` nor
/// `FAULT_FLAG_RETRY_NOWAIT` (the layer passes no other).
const ACCESS_FAULT_FLAGS: u32 = fault::ACCESS;

/// What a request asks of the VMA, and the fault flags that serve it.
///
/// # Invariants
///
/// `fault_flags` is within [`ACCESS_FAULT_FLAGS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Access {
    vm_flags: vm_flags_t,
    fault_flags: u32,
}

impl Access {
    /// The access of `asked` (`IOMMU_FAULT_PERM_*`), as
    /// `iommu_sva_handle_mm()` computes it.
    fn of(asked: u32) -> Self {
        let mut vm_flags = vm::NONE;
        let mut fault_flags = fault::REMOTE;
        if asked & perm::READ != 0 {
            vm_flags |= vm::READ;
        }
        if asked & perm::WRITE != 0 {
            vm_flags |= vm::WRITE;
            fault_flags |= fault::WRITE;
        }
        if asked & perm::EXEC != 0 {
            vm_flags |= vm::EXEC;
            fault_flags |= fault::INSTRUCTION;
        }
        if asked & perm::PRIV == 0 {
            fault_flags |= fault::USER;
        }
        // INVARIANT: only flags of `ACCESS_FAULT_FLAGS` were set.
        Self {
            vm_flags,
            fault_flags,
        }
    }

    /// Whether a VMA with `vma_flags` allows this access.
    fn allowed_by(self, vma_flags: vm_flags_t) -> bool {
        self.vm_flags & !vma_flags == 0
    }
}

/// The response of `handle_mm_fault()`'s result `ret`.
fn status_of(ret: VmFault) -> Status {
    if ret & VM_FAULT_ERROR != 0 {
        Status::Invalid
    } else {
        Status::Success
    }
}

/// What a fault served under the per-VMA lock left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VmaLockOutcome {
    /// Decided; `locked` tells whether the VMA lock is still held.
    Done { status: Status, locked: bool },
    /// `VM_FAULT_RETRY`: the VMA lock was released, serve under the mmap
    /// lock.
    Retry,
}

impl VmaLockOutcome {
    /// The outcome of `handle_mm_fault()`'s result `ret` under the VMA
    /// lock: with `VM_FAULT_RETRY` or `VM_FAULT_COMPLETED` it released the
    /// lock (as `do_user_addr_fault()` of `arch/x86/mm/fault.c` knows).
    fn of(ret: VmFault) -> Self {
        if ret & VM_FAULT_RETRY != 0 {
            return Self::Retry;
        }
        Self::Done {
            status: status_of(ret),
            locked: ret & VM_FAULT_COMPLETED == 0,
        }
    }

    /// Whether the VMA lock is still held.
    fn locked(self) -> bool {
        matches!(self, Self::Done { locked: true, .. })
    }
}

/// The addresses of a VMA, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// Whether the lock held for the VMA `held` (`None`: no lock held) serves
/// a request at `addr` too: only inside that VMA.
fn keeps_lock(held: Option<Span>, addr: usize) -> bool {
    held.is_some_and(|s| s.start <= addr && addr < s.end)
}

/// Serves `requests` in order while they succeed: errors are sticky, the
/// requests after the first failure are not handled. The group's status.
fn serve_in_order<T>(
    requests: impl IntoIterator<Item = T>,
    mut serve: impl FnMut(T) -> Status,
) -> Status {
    for r in requests {
        let status = serve(r);
        if status != Status::Success {
            return status;
        }
    }
    Status::Success
}

/// The lock a [`Server`] holds between requests.
enum Hold<'a> {
    None,
    /// The per-VMA read lock of the VMA the last request was in.
    Vma(VmaReadGuard<'a>),
    /// The mmap read lock; the VMA the last request was in, if any.
    Mmap(MmapReadGuard<'a>, Option<Span>),
}

impl Hold<'_> {
    /// The VMA whose requests the held lock serves.
    fn span(&self) -> Option<Span> {
        match self {
            Hold::None => None,
            Hold::Vma(vma) => Some(Span {
                start: vma.start(),
                end: vma.end(),
            }),
            Hold::Mmap(_, span) => *span,
        }
    }
}

/// How the requests of a group were served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    /// Requests decided under the per-VMA lock.
    vma_lock: u64,
    /// Requests decided under the mmap lock.
    mmap_lock: u64,
    /// Per-VMA locks taken.
    vma_locks_taken: u64,
    /// Mmap locks taken.
    mmap_locks_taken: u64,
}

/// Serves the requests of one group on one mm, keeping a lock from one
/// request to the next while they fall in the same VMA.
struct Server<'a> {
    /// The mm with the user reference of the group, `None` if it had no
    /// users left.
    mm: Option<&'a MmWithUser>,
    hold: Hold<'a>,
    tally: Tally,
}

impl<'a> Server<'a> {
    fn new(mm: Option<&'a MmWithUser>) -> Self {
        Self {
            mm,
            hold: Hold::None,
            tally: Tally::default(),
        }
    }

    /// Serves one request, as `iommu_sva_handle_mm()`.
    fn serve(&mut self, req: PageRequest) -> Status {
        if !req.pasid_valid() {
            return Status::Invalid;
        }
        let Some(mm) = self.mm else {
            return Status::Invalid;
        };
        let Ok(addr) = usize::try_from(req.addr) else {
            return Status::Invalid;
        };
        let access = Access::of(req.perm);
        let mut hold = core::mem::replace(&mut self.hold, Hold::None);
        if !keeps_lock(hold.span(), addr) {
            // Released before another lock of the mm is taken.
            drop(hold);
            hold = match mm.lock_vma_under_rcu(addr) {
                Some(vma) => {
                    self.tally.vma_locks_taken += 1;
                    Hold::Vma(vma)
                }
                None => Hold::None,
            };
        }
        if let Hold::Vma(vma) = hold {
            let (outcome, vma) = serve_under_vma_lock(vma, addr, access);
            if let VmaLockOutcome::Done { status, .. } = outcome {
                self.tally.vma_lock += 1;
                self.hold = vma.map_or(Hold::None, Hold::Vma);
                return status;
            }
            // `VM_FAULT_RETRY`: the VMA lock is released.
            hold = Hold::None;
        }
        let guard = match hold {
            Hold::Mmap(guard, _) => guard,
            _ => {
                self.tally.mmap_locks_taken += 1;
                mm.mmap_read_lock()
            }
        };
        let (status, span) = serve_under_mmap_lock(&guard, addr, access);
        self.tally.mmap_lock += 1;
        self.hold = Hold::Mmap(guard, span);
        status
    }

    /// Releases the lock held and tells how the requests were served.
    fn finish(self) -> Tally {
        self.tally
    }
}

/// Serves `requests` (the faults of a group) in order on `mm` until one
/// is not served: the group's status and how its requests were served.
/// The user reference of `mm`, taken once, is dropped with
/// `mmput_async()`; a dead mm answers `Invalid`.
fn serve_requests(mm: &Mm, requests: impl Iterator<Item = PageRequest>) -> (Status, Tally) {
    let user = mm.mmget_not_zero().map(MmWithUser::into_mmput_async);
    let mut server = Server::new(user.as_deref().map(|m| &**m));
    let status = serve_in_order(requests, |r| server.serve(r));
    (status, server.finish())
}

/// The work item of a group: serves it and answers it, once.
fn serve_group(group: Group) {
    COUNTERS.groups.add(1, Relaxed);
    COUNTERS.faults.add(group.faults().count() as u64, Relaxed);
    let (status, tally) = serve_requests(group.mm(), group.faults());
    COUNTERS.vma_lock.add(tally.vma_lock, Relaxed);
    COUNTERS.mmap_lock.add(tally.mmap_lock, Relaxed);
    status.counter().add(1, Relaxed);
    group.respond(status.response());
}

/// rsva as the server of its SVA domains' I/O page faults.
pub(crate) struct Iopf;

impl IopfServer for Iopf {
    fn serve(group: Group) {
        serve_group(group);
    }
}

/// Serves a request at `addr` under the per-VMA lock `vma` holds (a VMA
/// containing `addr`). Returns the outcome, and the guard while the lock
/// is still held.
fn serve_under_vma_lock(
    vma: VmaReadGuard<'_>,
    addr: usize,
    access: Access,
) -> (VmaLockOutcome, Option<VmaReadGuard<'_>>) {
    if !access.allowed_by(vma.flags()) {
        let outcome = VmaLockOutcome::Done {
            status: Status::Invalid,
            locked: true,
        };
        return (outcome, Some(vma));
    }
    let (ret, vma) = fault_in_locked_vma(vma, addr, access.fault_flags);
    (VmaLockOutcome::of(ret), vma)
}

/// Serves a request at `addr` under the mmap lock `guard` holds, as
/// `iommu_sva_handle_mm()`: returns the status and the VMA of `addr`.
fn serve_under_mmap_lock(
    guard: &MmapReadGuard<'_>,
    addr: usize,
    access: Access,
) -> (Status, Option<Span>) {
    let decide = |vma: &VmaSpan| access.allowed_by(vma.flags).then_some(access.fault_flags);
    match fault_in_mmap_locked(guard, addr, decide) {
        None => (Status::Invalid, None),
        Some((vma, ret)) => {
            let span = Some(Span {
                start: vma.start,
                end: vma.end,
            });
            (ret.map_or(Status::Invalid, status_of), span)
        }
    }
}

#[kunit_tests(rsva_iopf)]
mod tests {
    use super::*;
    use crate::kext::glue;
    use kernel::page::PAGE_SIZE;

    use crate::kext::{iommu::iopf::PASID_VALID, mm::fault::reason};
    use perm::{EXEC, PRIV, READ, WRITE};

    fn req(addr: usize, perm: u32) -> PageRequest {
        PageRequest {
            flags: PASID_VALID,
            perm,
            addr: addr as u64,
        }
    }

    #[test]
    fn perm_maps_to_vm_and_fault_flags() {
        let user_remote = fault::USER | fault::REMOTE;
        assert_eq!(
            Access::of(0),
            Access {
                vm_flags: vm::NONE,
                fault_flags: user_remote
            }
        );
        assert_eq!(
            Access::of(READ),
            Access {
                vm_flags: vm::READ,
                fault_flags: user_remote
            }
        );
        assert_eq!(
            Access::of(READ | WRITE),
            Access {
                vm_flags: vm::READ | vm::WRITE,
                fault_flags: user_remote | fault::WRITE
            }
        );
        assert_eq!(
            Access::of(EXEC | PRIV),
            Access {
                vm_flags: vm::EXEC,
                fault_flags: fault::REMOTE | fault::INSTRUCTION
            }
        );
        // Nothing that lets `handle_mm_fault()` drop a lock, whatever asked.
        let all = Access::of(u32::MAX);
        assert_eq!(all.fault_flags & !ACCESS_FAULT_FLAGS, 0);
        assert_eq!(all.vm_flags, vm::READ | vm::WRITE | vm::EXEC);
    }

    #[test]
    fn access_needs_every_vma_flag() {
        let rw = vm::READ | vm::WRITE;
        assert!(Access::of(READ).allowed_by(rw));
        assert!(Access::of(READ | WRITE).allowed_by(rw));
        assert!(Access::of(0).allowed_by(vm::NONE));
        assert!(!Access::of(WRITE).allowed_by(vm::READ));
        assert!(!Access::of(READ | EXEC).allowed_by(rw));
        assert!(Access::of(READ | EXEC).allowed_by(rw | vm::EXEC));
    }

    #[test]
    fn errors_are_sticky() {
        let mut seen = [0u8; 4];
        let mut n = 0;
        let mut record = |(i, s): (u8, Status)| {
            seen[n] = i;
            n += 1;
            s
        };
        let all_ok = [(1, Status::Success), (2, Status::Success)];
        assert_eq!(serve_in_order(all_ok, &mut record), Status::Success);
        let second_fails = [
            (3, Status::Success),
            (4, Status::Invalid),
            (5, Status::Success),
        ];
        assert_eq!(serve_in_order(second_fails, &mut record), Status::Invalid);
        assert_eq!((n, seen), (4, [1, 2, 3, 4]));
        let empty: [(u8, Status); 0] = [];
        assert_eq!(serve_in_order(empty, |_| Status::Invalid), Status::Success);
    }

    #[test]
    fn lock_kept_only_inside_the_vma() {
        let vma = Some(Span {
            start: 0x1000,
            end: 0x3000,
        });
        assert!(keeps_lock(vma, 0x1000));
        assert!(keeps_lock(vma, 0x2fff));
        assert!(!keeps_lock(vma, 0x3000));
        assert!(!keeps_lock(vma, 0xfff));
        assert!(!keeps_lock(None, 0x1000));
    }

    #[test]
    fn vma_lock_results() {
        let done = |status, locked| VmaLockOutcome::Done { status, locked };
        assert_eq!(VmaLockOutcome::of(0), done(Status::Success, true));
        let major = reason::MAJOR;
        assert_eq!(VmaLockOutcome::of(major), done(Status::Success, true));
        assert_eq!(
            VmaLockOutcome::of(VM_FAULT_COMPLETED),
            done(Status::Success, false)
        );
        assert_eq!(
            VmaLockOutcome::of(VM_FAULT_RETRY | major),
            VmaLockOutcome::Retry
        );
        assert!(!VmaLockOutcome::Retry.locked());
        for e in [
            reason::OOM,
            reason::SIGBUS,
            reason::SIGSEGV,
            reason::HWPOISON,
            reason::FALLBACK,
        ] {
            assert_eq!(VmaLockOutcome::of(e), done(Status::Invalid, true));
        }
        assert_eq!(status_of(reason::NOPAGE), Status::Success);
    }

    /// Requests served on an mm of this test: a touched mapping under the
    /// per-VMA lock, taken once for the requests in it; an unmapped
    /// address under the mmap lock; the group stops at the first failure.
    #[test]
    fn serves_an_mm() -> Result {
        let mm = glue::test_mm()?;
        let touched = glue::test_mmap(&mm, 4 * PAGE_SIZE, true)?;
        let fresh = glue::test_mmap(&mm, 4 * PAGE_SIZE, false)?;

        let reqs = [
            req(touched, READ | WRITE),
            req(touched + PAGE_SIZE, READ),
            req(touched + 3 * PAGE_SIZE, READ | WRITE),
        ];
        let (status, t) = serve_requests(&mm, reqs.into_iter());
        assert_eq!(status, Status::Success);
        assert_eq!((t.vma_lock, t.mmap_lock, t.vma_locks_taken), (3, 0, 1));

        // A fresh mapping: reading maps the zero page, writing needs an
        // anon_vma (made under the mmap lock if the VMA lock cannot). All
        // three under locks of their VMA, taken at most once each.
        let reqs = [
            req(fresh, READ),
            req(fresh + PAGE_SIZE, READ | WRITE),
            req(fresh + 2 * PAGE_SIZE, READ | PRIV),
        ];
        let (status, t) = serve_requests(&mm, reqs.into_iter());
        assert_eq!(status, Status::Success);
        assert_eq!(t.vma_lock + t.mmap_lock, 3);
        assert!(t.vma_locks_taken <= 2 && t.mmap_locks_taken <= 1);

        // Unmapped: no VMA lock, answered under the mmap lock. Sticky: the
        // request after it is not served.
        let hole = glue::test_mmap(&mm, PAGE_SIZE, false)?;
        glue::test_munmap(&mm, hole, PAGE_SIZE);
        let (status, t) = serve_requests(&mm, [req(hole, READ), req(touched, READ)].into_iter());
        assert_eq!(status, Status::Invalid);
        assert_eq!((t.vma_lock, t.mmap_lock, t.mmap_locks_taken), (0, 1, 1));

        // The VMA does not allow execution.
        let (status, t) = serve_requests(&mm, [req(touched, READ | EXEC)].into_iter());
        assert_eq!(status, Status::Invalid);
        assert_eq!(t.vma_lock + t.mmap_lock, 1);

        // A request without a PASID is refused before any lock.
        let no_pasid = PageRequest {
            flags: 0,
            ..req(touched, READ)
        };
        let (status, t) = serve_requests(&mm, [no_pasid].into_iter());
        assert_eq!(status, Status::Invalid);
        assert_eq!(t, Tally::default());
        Ok(())
    }

    /// The mm of a group whose process is gone answers `Invalid`, without
    /// a lock.
    #[test]
    fn dead_mm_is_invalid() -> Result {
        let mm = glue::test_mm()?;
        let touched = glue::test_mmap(&mm, PAGE_SIZE, true)?;
        let grab = glue::MmGrab::new(&mm)?;
        drop(mm);
        let (status, t) = serve_requests(grab.mm(), [req(touched, READ)].into_iter());
        assert_eq!(status, Status::Invalid);
        assert_eq!(t, Tally::default());
        Ok(())
    }
}
