// SPDX-License-Identifier: GPL-2.0

//! Device-model abstractions that rsva needs and the kernel crate does not
//! have yet, written as they would be under `rust/kernel/device/`.

pub(crate) mod bus_notifier;
