// SPDX-License-Identifier: GPL-2.0

//! Address spaces: the current task's, as the platform's user interfaces
//! need it.
//!
//! C header: [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h)

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
