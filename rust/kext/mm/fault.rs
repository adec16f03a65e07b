// SPDX-License-Identifier: GPL-2.0

//! Faulting in pages of a process's address space on behalf of a device
//! (`handle_mm_fault()`), under the per-VMA lock or the mmap lock.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)
//!
//! The callers give the fault flags of the access ([`flags`]); the flags
//! that would let `handle_mm_fault()` release the mmap lock
//! (`FAULT_FLAG_ALLOW_RETRY`, `FAULT_FLAG_RETRY_NOWAIT`) are never passed,
//! and `FAULT_FLAG_VMA_LOCK` is passed exactly when the per-VMA lock is the
//! one held, so the guard types keep telling which lock is held.

use kernel::{
    bindings,
    mm::{virt::vm_flags_t, MmapReadGuard, VmaReadGuard},
    prelude::*,
};

/// The result of `handle_mm_fault()`.
pub(crate) type VmFault = bindings::vm_fault_t;

/// The fault flags a caller may give: the access asked for.
pub(crate) mod flags {
    use kernel::bindings;

    /// A write access.
    pub(crate) const WRITE: u32 = bindings::fault_flag_FAULT_FLAG_WRITE;
    /// An access of user space, not of the kernel.
    pub(crate) const USER: u32 = bindings::fault_flag_FAULT_FLAG_USER;
    /// An access on behalf of another agent than the mm's tasks.
    pub(crate) const REMOTE: u32 = bindings::fault_flag_FAULT_FLAG_REMOTE;
    /// An instruction fetch.
    pub(crate) const INSTRUCTION: u32 = bindings::fault_flag_FAULT_FLAG_INSTRUCTION;

    /// Every flag a caller may give.
    pub(crate) const ACCESS: u32 = WRITE | USER | REMOTE | INSTRUCTION;
}

/// `VM_FAULT_RETRY`: the lock was released and the fault not handled.
pub(crate) const VM_FAULT_RETRY: VmFault = bindings::vm_fault_reason_VM_FAULT_RETRY;
/// `VM_FAULT_COMPLETED`: handled, and the lock released.
pub(crate) const VM_FAULT_COMPLETED: VmFault = bindings::vm_fault_reason_VM_FAULT_COMPLETED;
/// `VM_FAULT_SIGSEGV`: no page can be there.
pub(crate) const VM_FAULT_SIGSEGV: VmFault = bindings::vm_fault_reason_VM_FAULT_SIGSEGV;
/// `VM_FAULT_ERROR` of `include/linux/mm_types.h`: the fault failed.
pub(crate) const VM_FAULT_ERROR: VmFault = bindings::vm_fault_reason_VM_FAULT_OOM
    | bindings::vm_fault_reason_VM_FAULT_SIGBUS
    | VM_FAULT_SIGSEGV
    | bindings::vm_fault_reason_VM_FAULT_HWPOISON
    | bindings::vm_fault_reason_VM_FAULT_HWPOISON_LARGE
    | bindings::vm_fault_reason_VM_FAULT_FALLBACK;

/// Faults in `addr` of the VMA that `vma` holds the per-VMA read lock of,
/// for the access `access` ([`flags`]; others are ignored). Returns
/// `handle_mm_fault()`'s result, and the guard while the lock is still
/// held: with [`VM_FAULT_RETRY`] or [`VM_FAULT_COMPLETED`] it released it
/// (as `do_user_addr_fault()` of `arch/x86/mm/fault.c` knows). An `addr`
/// outside the VMA answers [`VM_FAULT_SIGSEGV`].
pub(crate) fn fault_in_locked_vma(
    vma: VmaReadGuard<'_>,
    addr: usize,
    access: u32,
) -> (VmFault, Option<VmaReadGuard<'_>>) {
    if addr < vma.start() || addr >= vma.end() {
        return (VM_FAULT_SIGSEGV, Some(vma));
    }
    let flags = (access & flags::ACCESS) | bindings::fault_flag_FAULT_FLAG_VMA_LOCK;
    // SAFETY: `vma` holds the read lock of a VMA containing `addr`, of an
    // mm with users; `FAULT_FLAG_VMA_LOCK` says that this is the lock held
    // and `FAULT_FLAG_RETRY_NOWAIT` is not set. No registers: not a CPU
    // fault.
    let ret = unsafe {
        bindings::handle_mm_fault(vma.as_ptr(), addr as c_ulong, flags, core::ptr::null_mut())
    };
    if ret & (VM_FAULT_RETRY | VM_FAULT_COMPLETED) != 0 {
        // `handle_mm_fault()` released the VMA lock: the guard must not.
        core::mem::forget(vma);
        (ret, None)
    } else {
        (ret, Some(vma))
    }
}

/// A VMA as the mmap lock showed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VmaSpan {
    /// Its first address.
    pub(crate) start: usize,
    /// The address past its end.
    pub(crate) end: usize,
    /// Its `vm_flags`.
    pub(crate) flags: vm_flags_t,
}

/// Looks up the VMA of `addr` under the mmap read lock `guard` holds and,
/// when `decide` gives the access for it ([`flags`]; others are ignored),
/// faults `addr` in, keeping the lock. Returns `None` when no VMA holds
/// `addr`; else the VMA and `handle_mm_fault()`'s result, `None` when
/// `decide` refused.
pub(crate) fn fault_in_mmap_locked(
    guard: &MmapReadGuard<'_>,
    addr: usize,
    decide: impl FnOnce(&VmaSpan) -> Option<u32>,
) -> Option<(VmaSpan, Option<VmFault>)> {
    let vma = guard.vma_lookup(addr)?;
    let span = VmaSpan {
        start: vma.start(),
        end: vma.end(),
        flags: vma.flags(),
    };
    let Some(access) = decide(&span) else {
        return Some((span, None));
    };
    let flags = access & flags::ACCESS;
    // SAFETY: `vma` contains `addr` and was looked up under the mmap read
    // lock that `guard` holds, on an mm with users. Without
    // `FAULT_FLAG_ALLOW_RETRY` nor `FAULT_FLAG_VMA_LOCK`, `handle_mm_fault()`
    // keeps that lock, which `guard` releases.
    let ret = unsafe {
        bindings::handle_mm_fault(vma.as_ptr(), addr as c_ulong, flags, core::ptr::null_mut())
    };
    Some((span, Some(ret)))
}

/// The bits of a `vm_fault_t` (`enum vm_fault_reason`), for tests of code
/// that reads them.
#[cfg(CONFIG_KUNIT)]
pub(crate) mod reason {
    use kernel::bindings;

    pub(crate) const MAJOR: u32 = bindings::vm_fault_reason_VM_FAULT_MAJOR;
    pub(crate) const OOM: u32 = bindings::vm_fault_reason_VM_FAULT_OOM;
    pub(crate) const SIGBUS: u32 = bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    pub(crate) const SIGSEGV: u32 = bindings::vm_fault_reason_VM_FAULT_SIGSEGV;
    pub(crate) const HWPOISON: u32 = bindings::vm_fault_reason_VM_FAULT_HWPOISON;
    pub(crate) const FALLBACK: u32 = bindings::vm_fault_reason_VM_FAULT_FALLBACK;
    pub(crate) const NOPAGE: u32 = bindings::vm_fault_reason_VM_FAULT_NOPAGE;
}
