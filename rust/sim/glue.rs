// SPDX-License-Identifier: GPL-2.0

//! The functions of `rsva_sim_glue.c` (see `rsva_sim_glue.h`), and small
//! helpers for the C ABI shared by the platform's files.

#![allow(
    unsafe_code,
    reason = "the declarations of rsva_sim_glue.c and the C ABI helpers, used by the layer"
)]

use kernel::{bindings, prelude::*};

// The prototypes name kernel structures only behind pointers; their
// layout does not cross the boundary.
#[expect(improper_ctypes)]
extern "C" {
    fn rsva_sim_iommu_param() -> *const c_char;
    pub(crate) fn rsva_sim_bus_register() -> c_int;
    pub(crate) fn rsva_sim_bus_unregister();
    pub(crate) fn rsva_sim_device_create(
        iommu: *mut bindings::iommu_device,
        id: c_uint,
        pasid_bits: c_uint,
        data: *mut c_void,
        release_data: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> *mut bindings::device;
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn rsva_sim_get_device(id: c_uint) -> *mut bindings::device;
    #[cfg(CONFIG_KUNIT)]
    pub(crate) fn rsva_sim_test_mm_alloc() -> *mut bindings::mm_struct;
    pub(crate) fn rsva_sim_device_destroy(dev: *mut bindings::device);
    pub(crate) fn rsva_sim_device_data(dev: *mut bindings::device) -> *mut c_void;
    pub(crate) fn rsva_sim_page_access(
        page: *mut bindings::page,
        offset: c_uint,
        buf: *mut c_void,
        len: c_uint,
        write: bool,
    );
    pub(crate) fn rsva_sim_page_copy(
        dst: *mut bindings::page,
        doff: c_uint,
        src: *mut bindings::page,
        soff: c_uint,
        len: c_uint,
    );
    pub(crate) fn rsva_sim_pfn_get_page(pfn: c_ulong) -> *mut bindings::page;
    pub(crate) fn rsva_sim_page_to_pfn(page: *mut bindings::page) -> c_ulong;
    pub(crate) fn rsva_sim_put_page(page: *mut bindings::page);
    pub(crate) fn rsva_sim_err(ptr: *const c_void) -> c_int;
    pub(crate) fn rsva_sim_current_mm() -> *mut bindings::mm_struct;
    fn rsva_sim_c_offset(field: c_uint) -> usize;
    pub(crate) fn rsva_sim_err_ptr(err: c_int) -> *mut c_void;
}

/// The `iommu=` module parameter: the IOMMU the platform behaves as.
pub(crate) fn iommu_param() -> &'static CStr {
    // SAFETY: The parameter is a NUL-terminated static buffer, written only
    // when the module is loaded (its permissions are read-only).
    unsafe { CStr::from_char_ptr(rsva_sim_iommu_param()) }
}

/// Converts a C pointer that may hold an `ERR_PTR` into a [`Result`].
pub(crate) fn from_err_ptr<T>(ptr: *mut T) -> Result<*mut T> {
    // SAFETY: `rsva_sim_err` only looks at the pointer's value.
    let err = unsafe { rsva_sim_err(ptr.cast()) };
    if err != 0 {
        return Err(Error::from_errno(err));
    }
    Ok(ptr)
}

/// Makes an `ERR_PTR` out of `err`.
pub(crate) fn err_ptr<T>(err: Error) -> *mut T {
    // SAFETY: `rsva_sim_err_ptr` only builds a pointer value.
    unsafe { rsva_sim_err_ptr(err.to_errno()) }.cast()
}

/// The current task's mm with its user reference, or `None` for a kernel
/// thread. Read in C: `CurrentTask::mm()` reads `task_struct` through
/// bindgen's layout, which does not match the compiler's on this
/// configuration.
pub(crate) fn current_mm() -> Option<*mut bindings::mm_struct> {
    // SAFETY: Reads `current->mm`, which only the current task changes.
    let mm = unsafe { rsva_sim_current_mm() };
    (!mm.is_null()).then_some(mm)
}

#[kunit_tests(rsva_sim_layout)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    fn c_offset(field: c_uint) -> usize {
        // SAFETY: Only computes an offset.
        unsafe { rsva_sim_c_offset(field) }
    }

    /// The fields the platform reads or writes from Rust are where the C
    /// compiler put them (the order is `enum rsva_sim_field`).
    #[test]
    fn bindings_layout_matches_c() {
        let rust = [
            offset_of!(bindings::iommu_domain, ops),
            offset_of!(bindings::iommu_domain, __bindgen_anon_1),
            offset_of!(bindings::iommu_device, max_pasids),
            offset_of!(bindings::mmu_notifier, ops),
            offset_of!(bindings::uacce_device, priv_),
            offset_of!(bindings::uacce_device, algs),
            offset_of!(bindings::uacce_device, api_ver),
            offset_of!(bindings::uacce_queue, priv_),
            offset_of!(bindings::uacce_interface, flags),
            offset_of!(bindings::uacce_interface, ops),
        ];
        for (i, &off) in rust.iter().enumerate() {
            assert_eq!(off, c_offset(i as c_uint));
        }
    }
}
