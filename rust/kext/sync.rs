// SPDX-License-Identifier: GPL-2.0

//! Synchronisation primitives that rsva needs and the kernel crate does not
//! have, written as they would be under `rust/kernel/sync/`.

pub(crate) mod slots;
