// SPDX-License-Identifier: GPL-2.0

//! I/O page faults of SVA domains: the groups of page requests the IOMMU
//! core hands to a domain's `iopf_handler`.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)
//!
//! [`install`] sets the handler of an [`IopfServer`] on an SVA domain. The
//! handler does what the core's `iommu_sva_iopf_handler()` does: it queues
//! the [`Group`] on the iopf queue's own workqueue, the one IOMMU drivers
//! drain with `iopf_queue_flush_dev()` before a PASID is detached, and the
//! work item gives it to [`IopfServer::serve`], which answers it once
//! ([`Group::respond`]).

use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use kernel::{
    bindings,
    interop::list::clist_create,
    mm::Mm,
    prelude::*,
    types::Opaque,
    workqueue::{Queue, RawWorkItem},
};

/// What serves the groups of the domains it was installed on.
pub(crate) trait IopfServer: 'static {
    /// Serves the page requests of `group` and answers it, once. Runs on
    /// the iopf queue's workqueue, in process context.
    fn serve(group: Group);
}

/// The permissions a page request asks for (`IOMMU_FAULT_PERM_*`).
pub(crate) mod perm {
    use kernel::bindings;

    /// Read.
    pub(crate) const READ: u32 = bindings::IOMMU_FAULT_PERM_READ;
    /// Write.
    pub(crate) const WRITE: u32 = bindings::IOMMU_FAULT_PERM_WRITE;
    /// Execute.
    pub(crate) const EXEC: u32 = bindings::IOMMU_FAULT_PERM_EXEC;
    /// A privileged (kernel) access.
    pub(crate) const PRIV: u32 = bindings::IOMMU_FAULT_PERM_PRIV;
}

/// `IOMMU_FAULT_PAGE_REQUEST_PASID_VALID`: the request names a PASID.
pub(crate) const PASID_VALID: u32 = bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID;

/// The fields of one page request that serving it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRequest {
    /// `IOMMU_FAULT_PAGE_REQUEST_*`.
    pub(crate) flags: u32,
    /// `IOMMU_FAULT_PERM_*` ([`perm`]).
    pub(crate) perm: u32,
    /// The faulting address.
    pub(crate) addr: u64,
}

impl PageRequest {
    /// Whether the request names a PASID.
    pub(crate) fn pasid_valid(self) -> bool {
        self.flags & PASID_VALID != 0
    }
}

/// The response to a group (`enum iommu_page_response_code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Response {
    /// Every request was served: the device retries the translation.
    Success = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_SUCCESS,
    /// A request cannot be served: the device does not retry.
    Invalid = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_INVALID,
    /// The group was not handled.
    Failure = bindings::iommu_page_response_code_IOMMU_PAGE_RESP_FAILURE,
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
/// the handler [`install`] set, until it is answered.
///
/// # Invariants
///
/// - `0` points to an `iopf_group` that `iommu_report_device_fault()` passed
///   to the handler of an SVA domain this module allocated, not answered nor
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
    /// `S`. Gives the group back if it could not be queued.
    fn queue<S: IopfServer>(self) -> Result<(), Self> {
        // SAFETY: The group is valid (type invariant) and its `work` is not
        // queued: the core made the group for this call and queues nothing.
        // `init_work_with_key()` is what `INIT_WORK()` does.
        unsafe {
            bindings::init_work_with_key(
                &raw mut (*self.raw()).work,
                Some(run::<S>),
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
    pub(crate) fn faults(&self) -> impl Iterator<Item = PageRequest> + '_ {
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
    pub(crate) fn mm(&self) -> &Mm {
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
    pub(crate) fn respond(self, status: Response) {
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
    fn answer(&mut self, status: Response) {
        // SAFETY: The group is ours, not answered nor freed (type
        // invariant); this is its one response, after which it is freed
        // and never used again (the caller is `respond`, which consumed
        // it, or `drop`).
        unsafe {
            bindings::iopf_group_response(self.raw(), status as bindings::iommu_page_response_code);
            bindings::iopf_free_group(self.raw());
        }
    }
}

impl Drop for Group {
    /// Not reached by a server that answers every group: should one
    /// forget, the device is still answered.
    fn drop(&mut self) {
        self.answer(Response::Failure);
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

/// The work item of a group: `S` serves its faults and answers it.
///
/// # Safety
///
/// `work` is the `work` of a group queued by [`Group::queue`], and this is
/// the one run of that work item.
unsafe extern "C" fn run<S: IopfServer>(work: *mut bindings::work_struct) {
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
    S::serve(group);
}

/// The `iopf_handler` of `S`: queues the group on the iopf queue's
/// workqueue, as `iommu_sva_iopf_handler()`. `-EBUSY` if it was not queued
/// (the core then answers and frees the group).
///
/// # Safety
///
/// Called by `iommu_report_device_fault()` with a group of an SVA domain
/// on which [`install`] set this handler, which it hands over to this call
/// (see the invariants of [`Group`]).
unsafe extern "C" fn handler<S: IopfServer>(group: *mut bindings::iopf_group) -> c_int {
    let Some(group) = NonNull::new(group) else {
        return EINVAL.to_errno();
    };
    // INVARIANT: By the safety requirements.
    match Group(group).queue::<S>() {
        Ok(()) => 0,
        Err(group) => {
            group.give_back();
            EBUSY.to_errno()
        }
    }
}

/// Makes `S` serve the I/O page faults of `domain`, on the iopf queue's
/// workqueue.
///
/// # Safety
///
/// `domain` must be an SVA domain just returned by
/// `iommu_sva_domain_alloc()`, not attached yet (so no fault is in flight),
/// which this module frees before it is unloaded.
pub(crate) unsafe fn install<S: IopfServer>(domain: *mut bindings::iommu_domain) {
    // SAFETY: By the safety requirements, nothing else uses the domain yet.
    unsafe { (*domain).iopf_handler = Some(handler::<S>) };
}

#[kunit_tests(rsva_iopf_layout)]
mod tests {
    use super::*;
    use crate::kext::glue;

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
            assert_eq!(off, glue::iopf_c_offset(i as c_uint));
        }
        // One past the last field.
        let end = glue::iopf_c_offset(rust.len() as c_uint);
        assert_eq!(end, usize::MAX);
    }
}
