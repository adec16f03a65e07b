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
//! item) is [`Group`] and [`install`]; the serving logic is safe code.

use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use kernel::{
    bindings,
    interop::list::clist_create,
    mm::{
        virt::{flags as vm, vm_flags_t},
        Mm, MmWithUser, MmapReadGuard, VmaReadGuard,
    },
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    types::Opaque,
    workqueue::{Queue, RawWorkItem},
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

/// The fields of one page request that serving it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRequest {
    /// `IOMMU_FAULT_PAGE_REQUEST_*`.
    pub(crate) flags: u32,
    /// `IOMMU_FAULT_PERM_*`.
    pub(crate) perm: u32,
    /// The faulting address.
    pub(crate) addr: u64,
}

impl PageRequest {
    fn pasid_valid(self) -> bool {
        self.flags & bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID != 0
    }
}

/// The response to a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Every request was served: the device retries the translation.
    Success,
    /// A request cannot be served: the device does not retry.
    Invalid,
    /// The group was not handled (never sent by rsva's work item).
    Failure,
}

impl Status {
    fn code(self) -> bindings::iommu_page_response_code {
        match self {
            Status::Success => bindings::iommu_page_response_code_IOMMU_PAGE_RESP_SUCCESS,
            Status::Invalid => bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID,
            Status::Failure => bindings::iommu_page_response_code_IOMMU_PAGE_RESP_FAILURE,
        }
    }

    fn counter(self) -> &'static Atomic<u64> {
        match self {
            Status::Success => &COUNTERS.resp_success,
            Status::Invalid => &COUNTERS.resp_invalid,
            Status::Failure => &COUNTERS.resp_failure,
        }
    }
}

const FAULT_FLAG_WRITE: u32 = bindings::fault_flag_FAULT_FLAG_WRITE;
const FAULT_FLAG_USER: u32 = bindings::fault_flag_FAULT_FLAG_USER;
const FAULT_FLAG_REMOTE: u32 = bindings::fault_flag_FAULT_FLAG_REMOTE;
const FAULT_FLAG_INSTRUCTION: u32 = bindings::fault_flag_FAULT_FLAG_INSTRUCTION;
const FAULT_FLAG_VMA_LOCK: u32 = bindings::fault_flag_FAULT_FLAG_VMA_LOCK;

/// The fault flags [`Access`] may hold: never `FAULT_FLAG_ALLOW_RETRY` nor
/// `FAULT_FLAG_RETRY_NOWAIT`, so that `handle_mm_fault()` never releases
/// the mmap lock, and may be given `FAULT_FLAG_VMA_LOCK`.
const ACCESS_FAULT_FLAGS: u32 =
    FAULT_FLAG_WRITE | FAULT_FLAG_USER | FAULT_FLAG_REMOTE | FAULT_FLAG_INSTRUCTION;

type VmFault = bindings::vm_fault_t;

const VM_FAULT_RETRY: VmFault = bindings::vm_fault_reason_VM_FAULT_RETRY;
const VM_FAULT_COMPLETED: VmFault = bindings::vm_fault_reason_VM_FAULT_COMPLETED;
/// `VM_FAULT_ERROR` of `include/linux/mm_types.h`.
const VM_FAULT_ERROR: VmFault = bindings::vm_fault_reason_VM_FAULT_OOM
    | bindings::vm_fault_reason_VM_FAULT_SIGBUS
    | bindings::vm_fault_reason_VM_FAULT_SIGSEGV
    | bindings::vm_fault_reason_VM_FAULT_HWPOISON
    | bindings::vm_fault_reason_VM_FAULT_HWPOISON_LARGE
    | bindings::vm_fault_reason_VM_FAULT_FALLBACK;

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
    /// The access of `perm` (`IOMMU_FAULT_PERM_*`), as
    /// `iommu_sva_handle_mm()` computes it.
    fn of(perm: u32) -> Self {
        let mut vm_flags = vm::NONE;
        let mut fault_flags = FAULT_FLAG_REMOTE;
        if perm & bindings::IOMMU_FAULT_PERM_READ != 0 {
            vm_flags |= vm::READ;
        }
        if perm & bindings::IOMMU_FAULT_PERM_WRITE != 0 {
            vm_flags |= vm::WRITE;
            fault_flags |= FAULT_FLAG_WRITE;
        }
        if perm & bindings::IOMMU_FAULT_PERM_EXEC != 0 {
            vm_flags |= vm::EXEC;
            fault_flags |= FAULT_FLAG_INSTRUCTION;
        }
        if perm & bindings::IOMMU_FAULT_PERM_PRIV == 0 {
            fault_flags |= FAULT_FLAG_USER;
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
    group.respond(status);
}

// The raw part: `handle_mm_fault()` under a lock, the group, the handler.

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
    let flags = (access.fault_flags & ACCESS_FAULT_FLAGS) | FAULT_FLAG_VMA_LOCK;
    // SAFETY: `vma` holds the read lock of a VMA containing `addr`, of an
    // mm with users; `FAULT_FLAG_VMA_LOCK` says that this is the lock held
    // and `FAULT_FLAG_RETRY_NOWAIT` is not set. No registers: not a CPU
    // fault.
    let ret = unsafe {
        bindings::handle_mm_fault(vma.as_ptr(), addr as c_ulong, flags, core::ptr::null_mut())
    };
    let outcome = VmaLockOutcome::of(ret);
    if outcome.locked() {
        (outcome, Some(vma))
    } else {
        // `handle_mm_fault()` released the VMA lock: the guard must not.
        core::mem::forget(vma);
        (outcome, None)
    }
}

/// Serves a request at `addr` under the mmap lock `guard` holds, as
/// `iommu_sva_handle_mm()`: returns the status and the VMA of `addr`.
fn serve_under_mmap_lock(
    guard: &MmapReadGuard<'_>,
    addr: usize,
    access: Access,
) -> (Status, Option<Span>) {
    let Some(vma) = guard.vma_lookup(addr) else {
        return (Status::Invalid, None);
    };
    let span = Some(Span {
        start: vma.start(),
        end: vma.end(),
    });
    if !access.allowed_by(vma.flags()) {
        return (Status::Invalid, span);
    }
    let flags = access.fault_flags & ACCESS_FAULT_FLAGS;
    // SAFETY: `vma` contains `addr` and was looked up under the mmap read
    // lock that `guard` holds, on an mm with users. Without
    // `FAULT_FLAG_ALLOW_RETRY` nor `FAULT_FLAG_VMA_LOCK`, `handle_mm_fault()`
    // keeps that lock, which `guard` releases.
    let ret = unsafe {
        bindings::handle_mm_fault(vma.as_ptr(), addr as c_ulong, flags, core::ptr::null_mut())
    };
    (status_of(ret), span)
}

/// One entry of a group's fault list, `struct iopf_fault`.
#[repr(transparent)]
struct Fault(Opaque<bindings::iopf_fault>);

impl Fault {
    fn request(&self) -> PageRequest {
        // SAFETY: An entry of the list of a live `Group`, which nothing
        // writes while the group exists.
        let prm = unsafe { (*self.0.get()).fault.prm };
        PageRequest {
            flags: prm.flags,
            perm: prm.perm,
            addr: prm.addr,
        }
    }
}

/// A group of page requests of one PASID that the IOMMU core handed to
/// [`handler`], until it is answered.
///
/// # Invariants
///
/// - `0` points to an `iopf_group` that `iommu_report_device_fault()` passed
///   to [`handler`] for an SVA domain rsva allocated, not answered nor
///   freed yet. This object owns it: nothing else answers or frees it, and
///   its fault list and entries do not change while it exists.
/// - Its `fault_param` holds a reference for the group, so
///   `fault_param->queue` and the queue's workqueue are valid.
/// - Its `attach_handle` stays attached, so the handle, its domain and the
///   domain's `mm` (grabbed by the domain) are valid: the IOMMU driver
///   drains a PASID's faults, `iopf_queue_flush_dev()`, before its detach
///   returns, and a detached domain receives no fault.
pub(crate) struct Group(NonNull<bindings::iopf_group>);

// SAFETY: A group may be served and answered on any thread; the IOMMU core
// synchronises the response with its own lock.
unsafe impl Send for Group {}

impl Group {
    fn raw(&self) -> *mut bindings::iopf_group {
        self.0.as_ptr()
    }

    /// Queues the group on its iopf queue's workqueue, to be served by
    /// [`run`]. Gives the group back if it could not be queued.
    fn queue(self) -> Result<(), Self> {
        // SAFETY: The group is valid (type invariant) and its `work` is not
        // queued: the core made the group for this call and queues nothing.
        // `init_work_with_key()` is what `INIT_WORK()` does.
        unsafe {
            bindings::init_work_with_key(
                &raw mut (*self.raw()).work,
                Some(run),
                false,
                c"rsva_iopf_group".as_char_ptr(),
                kernel::sync::static_lock_class!().as_ptr(),
            )
        };
        // SAFETY: `fault_param->queue->wq` is valid while the group lives
        // (type invariant), and the workqueue of a queue lives as long as
        // the queue; the reference does not outlive this call.
        let wq = unsafe { Queue::from_raw((*(*(*self.raw()).fault_param).queue).wq) };
        wq.enqueue(self)
    }

    /// The page requests of the group, in order, the last one last.
    fn faults(&self) -> impl Iterator<Item = PageRequest> + '_ {
        // SAFETY: `faults` is the initialised list of the group's
        // `struct iopf_fault`s, linked by `list`, which does not change
        // while the group exists (type invariant). `Fault` is transparent
        // over `struct iopf_fault`.
        let list = unsafe {
            clist_create!(
                &raw mut (*self.raw()).faults,
                Fault,
                bindings::iopf_fault,
                list
            )
        };
        list.iter().map(Fault::request)
    }

    /// The mm of the domain the faults are on. Holds no user reference.
    fn mm(&self) -> &Mm {
        // SAFETY: The attach handle, its domain and the domain's mm are
        // valid while the group exists (type invariant); the domain is an
        // SVA domain, whose `mm` is the member of the union set.
        unsafe {
            let domain = (*(*self.raw()).attach_handle).domain;
            Mm::from_raw((*domain).__bindgen_anon_1.__bindgen_anon_2.mm)
        }
    }

    /// Answers the group with `status` and frees it: one response per
    /// group, which consumes it.
    fn respond(self, status: Status) {
        let mut this = ManuallyDrop::new(self);
        this.answer(status);
    }

    /// Gives the group back to the IOMMU core unanswered: the handler
    /// failed, and `iommu_report_device_fault()` answers and frees it.
    fn give_back(self) {
        let _ = ManuallyDrop::new(self);
    }

    /// Sends the response and frees the group. Called once, by
    /// [`Self::respond`] (which does not drop the group) or by `drop`.
    fn answer(&mut self, status: Status) {
        status.counter().add(1, Relaxed);
        // SAFETY: The group is ours, not answered nor freed (type
        // invariant); this is its one response, after which it is freed
        // and never used again (the caller is `respond`, which consumed
        // it, or `drop`).
        unsafe {
            bindings::iopf_group_response(self.raw(), status.code());
            bindings::iopf_free_group(self.raw());
        }
    }
}

impl Drop for Group {
    /// Not reached by rsva's paths, which answer or give back every group:
    /// should one forget, the device is still answered.
    fn drop(&mut self) {
        self.answer(Status::Failure);
    }
}

// SAFETY: `__enqueue` passes the group's own `work`, initialised by
// `Group::queue` with `run`. Once it is queued, the group is owned by the
// work item (not dropped here), and only `run` answers and frees it, so
// the `work_struct` stays valid until `run` is called.
unsafe impl RawWorkItem<0> for Group {
    type EnqueueOutput = Result<(), Self>;

    unsafe fn __enqueue<F>(self, queue_work_on: F) -> Self::EnqueueOutput
    where
        F: FnOnce(*mut bindings::work_struct) -> bool,
    {
        // SAFETY: The group is valid (type invariant).
        let work = unsafe { &raw mut (*self.raw()).work };
        if queue_work_on(work) {
            let _ = ManuallyDrop::new(self);
            Ok(())
        } else {
            Err(self)
        }
    }
}

/// The work item of a group: serves its faults and answers it.
///
/// # Safety
///
/// `work` is the `work` of a group queued by [`Group::queue`], and this is
/// the one run of that work item.
unsafe extern "C" fn run(work: *mut bindings::work_struct) {
    // SAFETY: By the safety requirements, `work` is in a group that
    // `Group::queue` queued; the queued work item owned it, and hands it to
    // this run, once.
    let group = unsafe {
        Group(NonNull::new_unchecked(kernel::container_of!(
            work,
            bindings::iopf_group,
            work
        )))
    };
    serve_group(group);
}

/// rsva's `iopf_handler`: queues the group on the iopf queue's workqueue,
/// as `iommu_sva_iopf_handler()`. `-EBUSY` if it was not queued (the core
/// then answers and frees the group).
///
/// # Safety
///
/// Called by `iommu_report_device_fault()` with a group of an SVA domain
/// on which [`install`] set this handler, which it hands over to this call
/// (see the invariants of [`Group`]).
pub(crate) unsafe extern "C" fn handler(group: *mut bindings::iopf_group) -> c_int {
    let Some(group) = NonNull::new(group) else {
        return EINVAL.to_errno();
    };
    // INVARIANT: By the safety requirements.
    match Group(group).queue() {
        Ok(()) => 0,
        Err(group) => {
            group.give_back();
            EBUSY.to_errno()
        }
    }
}

/// Makes rsva serve the I/O page faults of `domain` ([`handler`]).
///
/// # Safety
///
/// `domain` must be an SVA domain just returned by
/// `iommu_sva_domain_alloc()`, not attached yet (so no fault is in flight),
/// which rsva frees before it is unloaded.
pub(crate) unsafe fn install(domain: *mut bindings::iommu_domain) {
    // SAFETY: By the safety requirements, nothing else uses the domain yet.
    unsafe { (*domain).iopf_handler = Some(handler) };
}

#[kunit_tests(rsva_iopf)]
mod tests {
    use super::*;
    use crate::kext::glue;
    use kernel::page::PAGE_SIZE;

    const READ: u32 = bindings::IOMMU_FAULT_PERM_READ;
    const WRITE: u32 = bindings::IOMMU_FAULT_PERM_WRITE;
    const EXEC: u32 = bindings::IOMMU_FAULT_PERM_EXEC;
    const PRIV: u32 = bindings::IOMMU_FAULT_PERM_PRIV;
    const PASID_VALID: u32 = bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID;

    fn req(addr: usize, perm: u32) -> PageRequest {
        PageRequest {
            flags: PASID_VALID,
            perm,
            addr: addr as u64,
        }
    }

    #[test]
    fn perm_maps_to_vm_and_fault_flags() {
        let user_remote = FAULT_FLAG_USER | FAULT_FLAG_REMOTE;
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
                fault_flags: user_remote | FAULT_FLAG_WRITE
            }
        );
        assert_eq!(
            Access::of(EXEC | PRIV),
            Access {
                vm_flags: vm::EXEC,
                fault_flags: FAULT_FLAG_REMOTE | FAULT_FLAG_INSTRUCTION
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
        let major = bindings::vm_fault_reason_VM_FAULT_MAJOR;
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
            bindings::vm_fault_reason_VM_FAULT_OOM,
            bindings::vm_fault_reason_VM_FAULT_SIGBUS,
            bindings::vm_fault_reason_VM_FAULT_SIGSEGV,
            bindings::vm_fault_reason_VM_FAULT_HWPOISON,
            bindings::vm_fault_reason_VM_FAULT_FALLBACK,
        ] {
            assert_eq!(VmaLockOutcome::of(e), done(Status::Invalid, true));
        }
        assert_eq!(
            status_of(bindings::vm_fault_reason_VM_FAULT_NOPAGE),
            Status::Success
        );
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
        // SAFETY: `mm` is live; unmaps what `map` mapped.
        unsafe { glue::rsva_test_munmap(mm.as_raw(), hole, PAGE_SIZE) };
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

    /// The fields the handler reads from Rust are where the C compiler put
    /// them (the order of `rsva_iopf_c_offset()`).
    #[test]
    fn bindings_layout_matches_c() {
        use core::mem::offset_of;
        let rust = [
            offset_of!(bindings::iopf_group, faults),
            offset_of!(bindings::iopf_group, work),
            offset_of!(bindings::iopf_group, attach_handle),
            offset_of!(bindings::iopf_group, fault_param),
            offset_of!(bindings::iopf_fault, fault),
            offset_of!(bindings::iopf_fault, list),
            offset_of!(bindings::iommu_fault, prm),
            offset_of!(bindings::iommu_fault_page_request, flags),
            offset_of!(bindings::iommu_fault_page_request, perm),
            offset_of!(bindings::iommu_fault_page_request, addr),
            offset_of!(bindings::iommu_attach_handle, domain),
            offset_of!(bindings::iommu_domain, iopf_handler),
            offset_of!(bindings::iommu_domain, __bindgen_anon_1),
            offset_of!(bindings::iommu_fault_param, queue),
            offset_of!(bindings::iopf_queue, wq),
        ];
        for (i, &off) in rust.iter().enumerate() {
            // SAFETY: Only computes an offset.
            assert_eq!(off, unsafe { glue::rsva_iopf_c_offset(i as c_uint) });
        }
        // SAFETY: As above; one past the last field.
        let end = unsafe { glue::rsva_iopf_c_offset(rust.len() as c_uint) };
        assert_eq!(end, usize::MAX);
    }
}
