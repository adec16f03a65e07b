// SPDX-License-Identifier: GPL-2.0

//! Address spaces: the current task's, as the platform's user interfaces
//! need it, and, in [`remote`], another one's pages as a device sees them.
//!
//! C header: [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h)

pub(crate) mod remote;

use kernel::{
    mm::{Mm, MmWithUser},
    sync::aref::ARef,
};

use crate::glue;

/// The current task's mm with a user reference of its own (`mmget`), or
/// `None` for a kernel thread or an mm on its way out.
pub(crate) fn current_mm() -> Option<ARef<MmWithUser>> {
    let mm = glue::current_mm()?;
    // SAFETY: `current->mm` is valid while the current task runs here: only
    // the task itself (exec, exit) changes it, and it holds a user
    // reference until then.
    unsafe { Mm::from_raw(mm) }.mmget_not_zero()
}

/// The address of the current task's mm, only to be compared (with the
/// address of an mm a reference keeps alive, so that no other mm can have
/// it meanwhile); `None` for a kernel thread.
pub(crate) fn current_mm_addr() -> Option<usize> {
    glue::current_mm().map(|mm| mm as usize)
}

/// The address of `mm`, only to be compared, as [`current_mm_addr`]'s.
pub(crate) fn mm_addr(mm: &Mm) -> usize {
    mm.as_raw() as usize
}

/// For KUnit: a fresh, empty mm with one user (`mm_alloc()`), put
/// (`mmput()`) when the returned reference drops.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn test_mm() -> kernel::prelude::Result<ARef<MmWithUser>> {
    use kernel::prelude::*;
    // SAFETY: Allocates an mm; no requirement.
    let mm = core::ptr::NonNull::new(unsafe { glue::rsva_sim_test_mm_alloc() }).ok_or(ENOMEM)?;
    // SAFETY: `mm_alloc()` returned an mm with one user reference, which
    // the `ARef` takes over.
    Ok(unsafe { ARef::from_raw(mm.cast()) })
}
