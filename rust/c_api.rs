// SPDX-License-Identifier: GPL-2.0

//! The C API of rsva: `extern "C"` functions whose prototypes and kernel-doc
//! are in `include/rsva.h` and which `rsva_exports.c` exports to modules.
//!
//! Each function turns C arguments into the typed Rust ones, calls the Rust
//! implementation and turns its result back into a kernel-style return.

use kernel::prelude::*;

use crate::pasid::PasidRange;

/// Validates a PASID range for a C caller; see `rsva_pasid_range_check()`.
///
/// Returns the number of PASIDs in `[min, max]`, or `-EINVAL`.
#[no_mangle]
extern "C" fn rsva_pasid_range_check(min: u32, max: u32) -> c_int {
    PasidRange::new(min, max)
        .and_then(|r| c_int::try_from(r.count()).map_err(|_| EOVERFLOW))
        .unwrap_or_else(|e| e.to_errno())
}
