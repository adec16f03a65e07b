// SPDX-License-Identifier: GPL-2.0

//! Device-model abstractions that rsva needs and the kernel crate does not
//! have yet, written as they would be under `rust/kernel/device/`.
//!
//! - [`bus_notifier`]: a notifier on the events of a bus.
//! - [`bus_watches`]: one such notifier per bus of the devices asked for,
//!   made on demand (logic only, no unsafe code).

pub(crate) mod bus_notifier;
pub(crate) mod bus_watches;
