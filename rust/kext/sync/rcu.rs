// SPDX-License-Identifier: GPL-2.0

//! Dropping a value from an RCU callback, to test code that must work
//! without a task (softirq context).
//!
//! C header: [`include/linux/rcupdate.h`](srctree/include/linux/rcupdate.h)

use kernel::{bindings, prelude::*};

/// A value and the RCU head that drops it.
#[repr(C)]
struct RcuBox<T> {
    head: bindings::callback_head,
    value: T,
}

/// The RCU callback: frees the box, dropping its value.
///
/// # Safety
///
/// `head` is the head of a boxed `RcuBox<T>` given to `call_rcu()` by
/// [`drop_after_grace_period`], called once.
unsafe extern "C" fn drop_box<T>(head: *mut bindings::callback_head) {
    // SAFETY: `head` is the first field of a `repr(C)` `RcuBox<T>` that
    // came from `KBox::into_raw`, and this is its only callback.
    drop(unsafe { KBox::from_raw(head.cast::<RcuBox<T>>()) });
}

/// Drops `value` in an RCU callback, after a grace period: in softirq
/// context, where no task runs. `ENOMEM` if the box cannot be allocated.
pub(crate) fn drop_after_grace_period<T: Send + 'static>(value: T) -> Result {
    let boxed = KBox::new(
        RcuBox {
            head: pin_init::zeroed(),
            value,
        },
        GFP_KERNEL,
    )?;
    let raw = KBox::into_raw(boxed);
    // SAFETY: `raw` stays valid until `drop_box` frees it, once, after the
    // grace period; the value may be dropped on another CPU (`T: Send`).
    unsafe { bindings::call_rcu(&raw mut (*raw).head, Some(drop_box::<T>)) };
    Ok(())
}

/// Waits until every RCU callback queued so far has run.
pub(crate) fn barrier() {
    // SAFETY: May sleep; no locks held by the callers.
    unsafe { bindings::rcu_barrier() };
}
