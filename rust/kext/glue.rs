// SPDX-License-Identifier: GPL-2.0

//! The functions of `rsva_glue.c` (prototypes in `rsva_glue.h`), and the
//! safe wrappers the rest of the crate uses.

use core::{marker::PhantomData, ptr::NonNull};

use kernel::{
    bindings,
    device::Device,
    iommu::dma_owner::Group,
    mm::Mm,
    prelude::*,
    sync::aref::ARef, //
};

/// `struct rsva_mm_ref` of `rsva_glue.c`.
#[repr(C)]
pub(crate) struct RawMmRef {
    _opaque: [u8; 0],
}

// The prototypes name kernel structures only behind pointers; their layout
// does not cross the boundary.
#[expect(improper_ctypes)]
extern "C" {
    pub(crate) fn rsva_glue_init() -> c_int;
    pub(crate) fn rsva_glue_exit();
    fn rsva_glue_flush();
    fn rsva_glue_wq() -> *mut bindings::workqueue_struct;
    fn rsva_module_get() -> bool;
    fn rsva_module_put();
    fn rsva_mm_ref_get(mm: *mut bindings::mm_struct) -> *mut RawMmRef;
    fn rsva_mm_ref_mm(r: *mut RawMmRef) -> *mut bindings::mm_struct;
    fn rsva_mm_ref_put(r: *mut RawMmRef);
    fn rsva_current_uid() -> u32;
    fn rsva_current_mm() -> *mut bindings::mm_struct;
    fn rsva_in_task() -> bool;
    pub(crate) fn rsva_mm_pasid(mm: *mut bindings::mm_struct) -> u32;
    pub(crate) fn rsva_mm_set_pasid(mm: *mut bindings::mm_struct, pasid: u32) -> c_int;
    pub(crate) fn rsva_assert_mmap_unlocked(mm: *mut bindings::mm_struct);
    fn rsva_test_mm_alloc() -> *mut bindings::mm_struct;
    pub(crate) fn rsva_dev_max_pasids(dev: *mut bindings::device) -> u32;
    pub(crate) fn rsva_keep_for(dev: *mut bindings::device) -> c_int;
    pub(crate) fn rsva_domain_of_iommu(
        domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
    ) -> bool;
    pub(crate) fn rsva_unkeep_for(dev: *mut bindings::device);
    fn rsva_kept_for(dev: *mut bindings::device) -> bool;
    #[cfg(CONFIG_KUNIT)]
    fn rsva_test_settle_gate();
    #[cfg(CONFIG_KUNIT)]
    fn rsva_test_settled_unbinds(n: c_ulong);
    fn rsva_rwsem_lock(which: c_int, write: bool);
    fn rsva_rwsem_unlock(which: c_int, write: bool);
    fn rsva_test_bus_register() -> c_int;
    fn rsva_test_bus_unregister();
    fn rsva_test_bus_device_add() -> *mut bindings::device;
    fn rsva_test_bus_device_del(dev: *mut bindings::device);
    fn rsva_test_bus_driver_register() -> c_int;
    fn rsva_test_bus_driver_unregister();
    pub(crate) fn rsva_test_free_pci_device() -> *mut bindings::device;
    pub(crate) fn rsva_test_device_new() -> *mut bindings::device;
    pub(crate) fn rsva_test_device_free(dev: *mut bindings::device);
    pub(crate) fn rsva_mni_set_seq(sub: *mut bindings::mmu_interval_notifier, seq: c_ulong);
    pub(crate) fn rsva_mni_read_retry(
        sub: *mut bindings::mmu_interval_notifier,
        seq: c_ulong,
    ) -> bool;
    pub(crate) fn rsva_mni_mm(
        sub: *const bindings::mmu_interval_notifier,
    ) -> *mut bindings::mm_struct;
    pub(crate) fn rsva_mn_range_blockable(range: *const bindings::mmu_notifier_range) -> bool;
    pub(crate) fn rsva_mn_range_start(range: *const bindings::mmu_notifier_range) -> c_ulong;
    pub(crate) fn rsva_mn_range_end(range: *const bindings::mmu_notifier_range) -> c_ulong;
    pub(crate) fn rsva_test_mmap(
        mm: *mut bindings::mm_struct,
        len: c_ulong,
        touch: bool,
    ) -> c_ulong;
    pub(crate) fn rsva_test_munmap(mm: *mut bindings::mm_struct, addr: c_ulong, len: c_ulong);
    pub(crate) fn rsva_pfn_page_get(pfn: c_ulong) -> *mut bindings::page;
    pub(crate) fn rsva_page_copy_to_user(page: *mut bindings::page, uaddr: u64) -> bool;
    pub(crate) fn rsva_page_put(page: *mut bindings::page);
    pub(crate) fn rsva_pfn_copy_page(pfn: c_ulong, from: *mut bindings::page);
    pub(crate) fn rsva_pfn_copy_user_nofault(pfn: c_ulong, uaddr: u64, to_user: bool) -> bool;
    pub(crate) fn rsva_is_zero_pfn(pfn: c_ulong) -> bool;
    pub(crate) fn rsva_page_pfn(page: *const bindings::page) -> c_ulong;
    pub(crate) fn rsva_folio_unlock_put(folio: *mut bindings::folio);
    pub(crate) fn rsva_test_touch(mm: *mut bindings::mm_struct, addr: c_ulong, len: c_ulong);
    pub(crate) fn rsva_iopf_c_offset(field: c_uint) -> usize;
    pub(crate) fn rsva_devmem_region_request(
        size: c_ulong,
        name: *const c_char,
        start: *mut u64,
    ) -> c_long;
    pub(crate) fn rsva_devmem_region_release(start: u64, size: c_ulong);
    pub(crate) fn rsva_pfn_device_private_pgmap(pfn: c_ulong) -> *mut bindings::dev_pagemap;
    pub(crate) fn rsva_folio_pgmap(folio: *mut bindings::folio) -> *mut bindings::dev_pagemap;
    pub(crate) fn rsva_folio_pfn(folio: *mut bindings::folio) -> c_ulong;
    pub(crate) fn rsva_folio_order(folio: *mut bindings::folio) -> c_uint;
    pub(crate) fn rsva_pfn_folio_order(pfn: c_ulong) -> c_uint;
    pub(crate) fn rsva_zone_device_folio_init(
        pfn: c_ulong,
        pgmap: *mut bindings::dev_pagemap,
        order: c_uint,
    );
    pub(crate) fn rsva_pfn_unlock_put(pfn: c_ulong);
    pub(crate) fn rsva_sys_folio_alloc_locked(
        vma: *mut bindings::vm_area_struct,
        addr: c_ulong,
        order: c_uint,
        nofail: bool,
    ) -> c_ulong;
    pub(crate) fn rsva_copy_highpage_pfn(to: c_ulong, from: c_ulong);
    pub(crate) fn rsva_clear_highpage_pfn(pfn: c_ulong);
    pub(crate) fn rsva_migrate_pfn(pfn: c_ulong) -> c_ulong;
    pub(crate) fn rsva_migrate_pfn_to_pfn(mpfn: c_ulong) -> c_ulong;
    pub(crate) fn rsva_vmf_pfn(vmf: *const bindings::vm_fault) -> c_ulong;
    pub(crate) fn rsva_vmf_page(vmf: *const bindings::vm_fault) -> *mut bindings::page;
    pub(crate) fn rsva_vmf_vma(vmf: *const bindings::vm_fault) -> *mut bindings::vm_area_struct;
    pub(crate) fn rsva_vmf_address(vmf: *const bindings::vm_fault) -> c_ulong;
    pub(crate) fn rsva_vmf_pte_mapped(vmf: *const bindings::vm_fault) -> bool;
}

/// An `mmgrab()` reference, like `ARef<Mm>`, that may be dropped in any
/// context (a work item, an RCU callback): outside task context the last
/// `mmdrop()`, which frees the mm and its PASID, runs from a work item.
///
/// # Invariants
///
/// `0` was returned by `rsva_mm_ref_get()` and holds an `mmgrab()` on its
/// mm until dropped.
pub(crate) struct MmGrab(NonNull<RawMmRef>);

// SAFETY: The reference may be dropped on any thread, in any context.
unsafe impl Send for MmGrab {}
// SAFETY: Shared access only reads the mm pointer.
unsafe impl Sync for MmGrab {}

impl MmGrab {
    /// Grabs `mm`. Process context (allocates).
    pub(crate) fn new(mm: &Mm) -> Result<Self> {
        // SAFETY: `mm` is valid: the caller holds a reference.
        let r = unsafe { rsva_mm_ref_get(mm.as_raw()) };
        // INVARIANT: just got.
        NonNull::new(r).map(Self).ok_or(ENOMEM)
    }

    /// The grabbed mm.
    pub(crate) fn mm(&self) -> &Mm {
        // SAFETY: The mm is grabbed while `self` lives (type invariant).
        unsafe { Mm::from_raw(rsva_mm_ref_mm(self.0.as_ptr())) }
    }
}

impl Drop for MmGrab {
    fn drop(&mut self) {
        // SAFETY: Got in `new`, put once; any context.
        unsafe { rsva_mm_ref_put(self.0.as_ptr()) };
    }
}

/// For KUnit: a fresh mm with one user (`mm_alloc()`), `mmput()` when
/// dropped.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn test_mm() -> Result<kernel::sync::aref::ARef<kernel::mm::MmWithUser>> {
    // SAFETY: Allocates an mm with one user reference.
    let mm = NonNull::new(unsafe { rsva_test_mm_alloc() }).ok_or(ENOMEM)?;
    // SAFETY: We own the user reference `mm_alloc()` returned.
    Ok(unsafe { kernel::sync::aref::ARef::from_raw(mm.cast()) })
}

/// For KUnit: maps `len` bytes of anonymous memory in `mm` (faulted in when
/// `touch`), from a kthread; the address, or the helper's errno.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn test_mmap(mm: &kernel::mm::MmWithUser, len: usize, touch: bool) -> Result<usize> {
    // SAFETY: `mm` is live; the helper maps in it from this kthread.
    let addr = unsafe { rsva_test_mmap(mm.as_raw(), len, touch) };
    if addr > usize::MAX - 4095 {
        return Err(Error::from_errno(addr as c_int));
    }
    Ok(addr)
}

/// rsva's workqueue (unbound): deferred `mmdrop()`s and the frees that may
/// not run where they are decided (in an mmu notifier's `release`).
pub(crate) fn workqueue() -> &'static kernel::workqueue::Queue {
    // SAFETY: The workqueue is created before any rsva object and destroyed
    // after the last one, at module exit; it is valid meanwhile.
    unsafe { kernel::workqueue::Queue::from_raw(rsva_glue_wq()) }
}

/// Waits until every work item queued on [`workqueue`] so far has run:
/// the `mmdrop()`s that [`MmGrab`] deferred and the deferred frees.
pub(crate) fn flush_deferred() {
    // SAFETY: The workqueue exists while the module is loaded.
    unsafe { rsva_glue_flush() };
}

/// For KUnit: waits while a test holds back the work items that settle a
/// PASID lease (`rsva_test_hold_settle()` of `include/rsva_test.h`). Called
/// by such a work item before it settles; process context, no lock held.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn test_settle_gate() {
    // SAFETY: The gate is a wait queue and a flag of `rsva_glue.c`, valid
    // while the module is loaded; waiting on it has no precondition.
    unsafe { rsva_test_settle_gate() };
}

/// For KUnit: counts `n` unbinds that settling a lease did
/// (`rsva_test_settle_unbinds()`).
#[cfg(CONFIG_KUNIT)]
pub(crate) fn test_settled_unbinds(n: usize) {
    // SAFETY: Adds to an atomic counter of `rsva_glue.c`; any context.
    unsafe { rsva_test_settled_unbinds(n as c_ulong) };
}

/// A reference to this module, as a bind through rsva's own API holds one
/// until its unbind (so a driver that leaks a bond keeps rsva loaded):
/// `try_module_get()`, `ENODEV` while the module is being unloaded.
pub(crate) struct ModuleRef(());

impl ModuleRef {
    pub(crate) fn get() -> Result<Self> {
        // SAFETY: No arguments; `try_module_get(THIS_MODULE)`.
        if unsafe { rsva_module_get() } {
            Ok(Self(()))
        } else {
            Err(ENODEV)
        }
    }

    /// Keeps the reference past this object, for a bond; [`Self::put`]
    /// drops it.
    pub(crate) fn keep(self) {
        core::mem::forget(self);
    }

    /// Drops a reference kept by [`Self::keep`].
    ///
    /// # Safety
    ///
    /// Each call drops one kept reference. The caller is called by a module
    /// that uses rsva's symbols (so rsva outlives this call) or by rsva.
    pub(crate) unsafe fn put() {
        // SAFETY: By the safety requirements.
        unsafe { rsva_module_put() };
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: Taken in `get` and not kept.
        unsafe { rsva_module_put() };
    }
}

/// The user id (in the initial user namespace) of the current task.
pub(crate) fn current_uid() -> u32 {
    // SAFETY: Reads the current task's credentials.
    unsafe { rsva_current_uid() }
}

/// The current task's mm, or null for a kernel thread. Read in C:
/// `CurrentTask::mm()` reads `task_struct` through bindgen's layout, which
/// does not match the compiler's on this configuration.
pub(crate) fn current_mm() -> *mut bindings::mm_struct {
    // SAFETY: Reads `current->mm`, which only the current task changes.
    unsafe { rsva_current_mm() }
}

/// Whether the caller runs in task context, not in an interrupt (a
/// softirq, a hard interrupt or an NMI).
pub(crate) fn in_task() -> bool {
    // SAFETY: Reads the preempt count.
    unsafe { rsva_in_task() }
}

/// The rw-semaphores of `rsva_glue.c`.
#[derive(Clone, Copy)]
pub(crate) enum Rwsem {
    /// rsva's own bind entry points (read) against the serving switch.
    Serve = 0,
    /// Every bind (read) against rsva's DMA ownership claims (write, while
    /// binds are under way: `claims::Claims::bind_pass`).
    Owner = 1,
}

/// One of the rw-semaphores, held while the guard lives.
pub(crate) struct RwsemGuard {
    which: Rwsem,
    write: bool,
}

impl RwsemGuard {
    /// Takes `which` for reading (`write == false`) or writing.
    pub(crate) fn lock(which: Rwsem, write: bool) -> Self {
        // SAFETY: A static rw-semaphore; released in `drop`.
        unsafe { rsva_rwsem_lock(which as c_int, write) };
        Self { which, write }
    }
}

impl Drop for RwsemGuard {
    fn drop(&mut self) {
        // SAFETY: Taken in `lock` in the same mode.
        unsafe { rsva_rwsem_unlock(self.which as c_int, self.write) };
    }
}

/// The tasks that are inside some callback now, recorded without
/// allocating in `N` slots (0: a free slot); beyond `N` at once a task
/// runs unrecorded. Used to refuse, with `EDEADLK`, calls that must not be
/// made from inside a driver's callback.
///
/// # Invariants
///
/// `inside` counts the tasks in [`Self::run`] (fewer than 2^15 at once): it
/// is non-zero while a slot names a task, so that [`Self::has_current`]
/// looks at no slot when no task is inside (the C API's calls, which ask
/// first). It is an `i16`, whose atomic load is a plain `READ_ONCE()`
/// (a wider integer's calls an instrumented C helper, a cost the C API's
/// DMA claims pay twice per cycle).
pub(crate) struct TaskMarks<const N: usize> {
    inside: kernel::sync::atomic::Atomic<i16>,
    slots: [kernel::sync::atomic::Atomic<usize>; N],
}

impl<const N: usize> TaskMarks<N> {
    /// No task marked.
    pub(crate) const fn new() -> Self {
        Self {
            inside: kernel::sync::atomic::Atomic::new(0),
            slots: [const { kernel::sync::atomic::Atomic::new(0) }; N],
        }
    }

    /// Whether the current task runs inside [`Self::run`].
    ///
    /// Inlined: while no task is marked, one load in the caller.
    #[inline]
    pub(crate) fn has_current(&self) -> bool {
        use kernel::sync::atomic::Relaxed;
        // The current task's own increment is seen by itself.
        self.inside.load(Relaxed) != 0 && self.marks_current()
    }

    /// Whether a slot names the current task.
    fn marks_current(&self) -> bool {
        use kernel::sync::atomic::Relaxed;
        let me = kernel::task::Task::current_raw() as usize;
        self.slots.iter().any(|t| t.load(Relaxed) == me)
    }

    /// Runs `f` with the current task marked.
    pub(crate) fn run(&self, f: impl FnOnce()) {
        use kernel::sync::atomic::Relaxed;
        let me = kernel::task::Task::current_raw() as usize;
        // INVARIANT: counted before a slot names the task, and until after.
        self.count_inside(1);
        let slot = self
            .slots
            .iter()
            .find(|t| t.cmpxchg(0, me, Relaxed).is_ok());
        f();
        if let Some(slot) = slot {
            slot.store(0, Relaxed);
        }
        self.count_inside(-1);
    }

    /// Adds `delta` to `inside`.
    fn count_inside(&self, delta: i16) {
        use kernel::sync::atomic::Relaxed;
        let mut old = self.inside.load(Relaxed);
        // No `add` for `i16`: a compare-and-exchange, as costly.
        while let Err(now) = self.inside.cmpxchg(old, old.wrapping_add(delta), Relaxed) {
            old = now;
        }
    }
}

/// The C glue's state (a workqueue for deferred `mmdrop()`s), torn down
/// last, once every reference it may run has been dropped.
pub(crate) struct Glue;

impl Glue {
    /// Sets up the glue's state; once, at module init.
    pub(crate) fn init() -> Result<Self> {
        // SAFETY: Called once, at module init.
        kernel::error::to_result(unsafe { rsva_glue_init() })?;
        Ok(Glue)
    }
}

impl Drop for Glue {
    fn drop(&mut self) {
        // SAFETY: Initialised in `init`; drains the pending work.
        unsafe { rsva_glue_exit() };
        super::iommu::pasid::exit();
    }
}

/// The C `struct device` of `dev`. `Device` wraps it transparently; the
/// kernel crate keeps its own `as_raw()` to itself.
pub(crate) fn dev_ptr(dev: &Device) -> *mut bindings::device {
    core::ptr::from_ref(dev).cast_mut().cast()
}

/// Whether an owner that manages DMA itself (VFIO, iommufd, a claim made
/// through rsva) holds the group of `dev`; false for a device without
/// group.
pub(crate) fn user_owned(dev: &Device) -> bool {
    Group::of(dev).is_ok_and(|g| g.has_dma_owner())
}

/// For KUnit: a PCI device of the VM with an IOMMU group and no driver,
/// or `ENODEV`.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn test_free_pci_device() -> Result<ARef<Device>> {
    // SAFETY: Returns a referenced device, or null.
    let dev = NonNull::new(unsafe { rsva_test_free_pci_device() }).ok_or(ENODEV)?;
    // SAFETY: The `ARef` owns the reference the helper took; `Device`
    // wraps `struct device` transparently.
    Ok(unsafe { ARef::from_raw(dev.cast()) })
}

/// For KUnit: a registered root device without IOMMU group, unregistered
/// when dropped.
///
/// # Invariants
///
/// The device is registered (`root_device_register()`) while this lives.
#[cfg(CONFIG_KUNIT)]
pub(crate) struct TestDevice(NonNull<bindings::device>);

#[cfg(CONFIG_KUNIT)]
impl TestDevice {
    /// Registers one.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Registers a device, or returns an `ERR_PTR()`.
        let dev = kernel::error::from_err_ptr(unsafe { rsva_test_device_new() })?;
        // INVARIANT: registered just above; `from_err_ptr` let no error
        // through, and `root_device_register()` returns no null.
        NonNull::new(dev).map(Self).ok_or(ENOMEM)
    }
}

#[cfg(CONFIG_KUNIT)]
impl core::ops::Deref for TestDevice {
    type Target = Device;

    fn deref(&self) -> &Device {
        // SAFETY: Registered, so valid, while `self` lives.
        unsafe { Device::from_raw(self.0.as_ptr()) }
    }
}

#[cfg(CONFIG_KUNIT)]
impl Drop for TestDevice {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`, unregistered once, here.
        unsafe { rsva_test_device_free(self.0.as_ptr()) };
    }
}

/// For KUnit: rsva's test bus (`rsva_test_bus`), registered while this
/// lives; one at a time.
///
/// # Invariants
///
/// The bus is registered while this lives.
#[cfg(CONFIG_KUNIT)]
pub(crate) struct TestBus(());

#[cfg(CONFIG_KUNIT)]
impl TestBus {
    /// Registers the bus; `EEXIST` while another `TestBus` lives.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Registers a static bus, or fails.
        kernel::error::to_result(unsafe { rsva_test_bus_register() })?;
        // INVARIANT: registered just above.
        Ok(Self(()))
    }

    /// A new device on the bus, removed when the result is dropped.
    pub(crate) fn add_device(&self) -> Result<TestBusDevice<'_>> {
        // SAFETY: The bus is registered (type invariant); returns a
        // registered device or an `ERR_PTR()`.
        let dev = kernel::error::from_err_ptr(unsafe { rsva_test_bus_device_add() })?;
        // INVARIANT: registered just above, never null.
        NonNull::new(dev)
            .map(|dev| TestBusDevice(dev, PhantomData))
            .ok_or(ENOMEM)
    }

    /// Registers the bus's driver, which binds every device of the bus
    /// (those added later too) until the result is dropped, which unbinds
    /// them. One at a time.
    pub(crate) fn add_driver(&self) -> Result<TestBusDriver<'_>> {
        // SAFETY: The bus is registered (type invariant); registers a
        // static driver of it, or fails (`EBUSY` while it is registered).
        kernel::error::to_result(unsafe { rsva_test_bus_driver_register() })?;
        // INVARIANT: registered just above.
        Ok(TestBusDriver(PhantomData))
    }
}

/// For KUnit: the driver of a [`TestBus`], bound to its devices.
///
/// # Invariants
///
/// The driver is registered while this lives.
#[cfg(CONFIG_KUNIT)]
pub(crate) struct TestBusDriver<'a>(PhantomData<&'a TestBus>);

#[cfg(CONFIG_KUNIT)]
impl Drop for TestBusDriver<'_> {
    fn drop(&mut self) {
        // SAFETY: Registered in `TestBus::add_driver`, unregistered once,
        // here, before the bus (which it borrows) goes.
        unsafe { rsva_test_bus_driver_unregister() };
    }
}

#[cfg(CONFIG_KUNIT)]
impl Drop for TestBus {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`, unregistered once, here; its devices
        // borrow it, so they are gone.
        unsafe { rsva_test_bus_unregister() };
    }
}

/// For KUnit: a device on a [`TestBus`].
///
/// # Invariants
///
/// The device is registered while this lives.
#[cfg(CONFIG_KUNIT)]
pub(crate) struct TestBusDevice<'a>(NonNull<bindings::device>, PhantomData<&'a TestBus>);

#[cfg(CONFIG_KUNIT)]
impl core::ops::Deref for TestBusDevice<'_> {
    type Target = Device;

    fn deref(&self) -> &Device {
        // SAFETY: Registered, so valid, while `self` lives.
        unsafe { Device::from_raw(self.0.as_ptr()) }
    }
}

#[cfg(CONFIG_KUNIT)]
impl Drop for TestBusDevice<'_> {
    fn drop(&mut self) {
        // SAFETY: Registered in `TestBus::add_device`, unregistered once,
        // here (which drops the reference `device_add()`'s caller held).
        unsafe { rsva_test_bus_device_del(self.0.as_ptr()) };
    }
}

/// Waits for the `free_notifier` calls of every mmu notifier put so far
/// (`mmu_notifier_synchronize()`). May sleep; it must not be called from a
/// notifier's callback.
pub(crate) fn synchronize_notifiers() {
    // SAFETY: Only waits for an SRCU grace period and its callbacks.
    unsafe { bindings::mmu_notifier_synchronize() };
}

/// Whether the current task has `CAP_SYS_ADMIN` (`capable()`, which marks
/// the task as having used it).
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: `capable()` only looks at the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) }
}

/// How many PASIDs the IOMMU gives `dev` (`dev->iommu->max_pasids`), 0
/// without PASID support.
pub(crate) fn dev_max_pasids(dev: &Device) -> u32 {
    // SAFETY: `dev` is valid; the helper only reads.
    unsafe { rsva_dev_max_pasids(dev_ptr(dev)) }
}

/// Checks with lockdep that the caller does not hold the mmap lock of
/// `mm`, which binding takes.
pub(crate) fn assert_mmap_unlocked(mm: &kernel::mm::MmWithUser) {
    // SAFETY: `mm` is live; the helper only asserts.
    unsafe { rsva_assert_mmap_unlocked(mm.as_raw()) };
}

/// A user reference on the current task's mm (`mmget_not_zero()`), or
/// `None` for a kernel thread or an mm that is going away.
pub(crate) fn current_mm_user() -> Option<ARef<kernel::mm::MmWithUser>> {
    let mm = current_mm();
    if mm.is_null() {
        return None;
    }
    // SAFETY: `current->mm` stays valid while the current task runs here.
    unsafe { Mm::from_raw(mm) }.mmget_not_zero()
}

/// For KUnit: unmaps `[addr, addr + len)` of `mm`, from a kthread.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn test_munmap(mm: &kernel::mm::MmWithUser, addr: usize, len: usize) {
    // SAFETY: `mm` is live; the helper unmaps in it from this kthread.
    unsafe { rsva_test_munmap(mm.as_raw(), addr as c_ulong, len as c_ulong) };
}

/// For KUnit: the offset the C compiler gives field `field` of the list
/// `rsva_iopf_c_offset()` walks, `usize::MAX` past its end.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn iopf_c_offset(field: c_uint) -> usize {
    // SAFETY: Only computes an offset.
    unsafe { rsva_iopf_c_offset(field) }
}

/// A watch of a device for the domains kept for it (`rsva_keep_for()`): a
/// devres action calls `rsva_device_gone()` when its driver goes, while
/// the device's IOMMU driver is still there; each watch pins rsva. Watches
/// of one device are counted; dropping one ends it (`rsva_unkeep_for()`).
///
/// # Invariants
///
/// `dev` holds one count of the C watch list's entry of the device.
pub(crate) struct DeviceWatch {
    dev: ARef<Device>,
}

impl DeviceWatch {
    /// Watches `dev`. `ENOMEM`, or `ENODEV` while rsva is being unloaded.
    ///
    /// `dev` is bound to its driver, so the devres action is one of the
    /// driver's: it runs when the driver goes, before the IOMMU core
    /// releases the device from its IOMMU.
    pub(crate) fn new(dev: &Device<kernel::device::Bound>) -> Result<Self> {
        // SAFETY: `dev` is valid; the watch ends in `drop`.
        kernel::error::to_result(unsafe { rsva_keep_for(dev_ptr(dev)) })?;
        // INVARIANT: counted just above.
        Ok(Self { dev: dev.into() })
    }

    /// The watched device.
    pub(crate) fn device(&self) -> &Device {
        &self.dev
    }

    /// Whether this watches the device at address `dev` (only compared).
    pub(crate) fn watches(&self, dev: usize) -> bool {
        dev_ptr(&self.dev) as usize == dev
    }

    /// Whether this watches `dev`.
    pub(crate) fn is_of(&self, dev: &Device) -> bool {
        core::ptr::eq::<Device>(&*self.dev, dev)
    }

    /// Whether a watch of `dev` lives. Takes the watches' mutex.
    pub(crate) fn exists(dev: &Device) -> bool {
        // SAFETY: `dev` is valid; its address is only compared.
        unsafe { rsva_kept_for(dev_ptr(dev)) }
    }
}

impl Drop for DeviceWatch {
    fn drop(&mut self) {
        // SAFETY: The count taken in `new` (type invariant); the device is
        // referenced. The C side copes with a device whose actions run.
        unsafe { rsva_unkeep_for(dev_ptr(&self.dev)) };
    }
}
