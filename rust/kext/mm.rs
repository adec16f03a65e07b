// SPDX-License-Identifier: GPL-2.0

//! Memory management abstractions that rsva needs and the kernel crate
//! does not have yet, written as they would be under `rust/kernel/mm/`:
//! each states which references its types hold and what dropping them does.

pub(crate) mod device_exclusive;
pub(crate) mod fault;
pub(crate) mod frame_table;
pub(crate) mod interval_notifier;
pub(crate) mod migrate;
pub(crate) mod pagemap;
