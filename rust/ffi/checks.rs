// SPDX-License-Identifier: GPL-2.0

//! What every C entry point of rsva checks before it acts on its
//! arguments (`ffi/sva.rs`, `ffi/mirror.rs`, `dma/claims.rs`): that a
//! pointer is neither NULL nor an `ERR_PTR()`, and, for the functions that
//! may sleep, that the caller is not inside one of a driver's mirror hooks
//! (which the mirror calls under its lock).

#![forbid(unsafe_code)]

use kernel::{bindings, prelude::*};

use crate::kext::glue::TaskMarks;

/// Whether `p` is NULL or an `ERR_PTR()` (`IS_ERR_OR_NULL()`): both are
/// the last `MAX_ERRNO + 1` values of the address space, modulo 2^64.
pub(crate) fn is_err_or_null<T>(p: *const T) -> bool {
    (p as usize).wrapping_neg() <= bindings::MAX_ERRNO as usize
}

/// `EINVAL` for a NULL or `ERR_PTR()` argument of a C caller.
pub(crate) fn check_ptr<T>(p: *const T) -> Result {
    if is_err_or_null(p) {
        return Err(EINVAL);
    }
    Ok(())
}

/// The tasks inside a driver's hook. Hooks must not sleep, so few tasks
/// are in one at a time; beyond 64 at once a hook runs unrecorded, and a
/// call from it that should get `EDEADLK` goes on.
static IN_HOOK: TaskMarks<64> = TaskMarks::new();

/// Runs `f`, a call of one of a driver's mirror hooks, with the current
/// task marked as inside it (see [`may_sleep`]).
pub(crate) fn in_hook(f: impl FnOnce()) {
    IN_HOOK.run(f);
}

/// `EDEADLK` inside a mirror's hook, where sleeping (or taking the
/// mirror's lock again) would deadlock; the functions that may sleep call
/// this first.
pub(crate) fn may_sleep() -> Result {
    if IN_HOOK.has_current() {
        return Err(EDEADLK);
    }
    Ok(())
}
