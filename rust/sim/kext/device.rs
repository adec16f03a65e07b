// SPDX-License-Identifier: GPL-2.0

//! Devices: the platform's bus and the devices on it.

pub(crate) mod bus;
