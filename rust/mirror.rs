// SPDX-License-Identifier: GPL-2.0

//! The HMM mirror: a device's view of a process address space, kept by
//! `hmm_range_fault()` and interval notifiers, and the mirror devices'
//! memory and migration.
//!
//! Layers, lowest first:
//!
//! - [`registry`]: one shared mirror per mm, with its clients (device
//!   tables and C drivers' hooks), known to it only through traits.
//! - [`hmm`]: the device's page table and its READ, WRITE, SNAPSHOT and
//!   exclusive-access requests.
//! - [`migration`], [`devmem`]: the devices' private memory and migration
//!   to it and back.
//! - [`mmap`], [`dev`]: the character devices that expose a mirror to user
//!   space, with the ioctls of the kernel's `test_hmm`.
//!
//! No file of the part has unsafe code: what it needs of the kernel is in
//! the abstraction layer, `kext/`.

#![forbid(unsafe_code)]

pub(crate) mod dev;
pub(crate) mod devmem;
pub(crate) mod hmm;
pub(crate) mod migration;
pub(crate) mod mmap;
pub(crate) mod registry;
