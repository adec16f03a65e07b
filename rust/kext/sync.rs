// SPDX-License-Identifier: GPL-2.0

//! Synchronisation primitives that rsva needs and the kernel crate does not
//! have, written as they would be under `rust/kernel/sync/`.

pub(crate) mod global;
#[cfg(CONFIG_KUNIT)]
pub(crate) mod rcu;
pub(crate) mod slots;
