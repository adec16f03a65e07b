// SPDX-License-Identifier: GPL-2.0

//! The C side of rsva: every `#[no_mangle]` function of the module, whose
//! prototypes and kernel-doc are in `include/rsva.h` (and, for KUnit,
//! `include/rsva_test.h`). Nothing below calls into this module: it is the
//! top of the crate's layers.
//!
//! - [`sva`]: PASIDs, SVA binds and DMA ownership claims.
//! - [`mirror`]: the HMM mirror for C drivers.
//! - [`checks`]: what every entry point checks first (NULL and `ERR_PTR()`
//!   arguments, calls from inside a mirror's hook).

pub(crate) mod checks;
pub(crate) mod mirror;
pub(crate) mod sva;
