// SPDX-License-Identifier: GPL-2.0

//! A misc device whose files see the data of their registration.
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h)
//!
//! The kernel crate's [`MiscDeviceRegistration`] hands `open()` the
//! registration only; a driver that keeps per-device data next to it would
//! have to find it with `container_of!`, trusting that every registration
//! of its type is embedded where it expects. [`MiscRegistration`] makes
//! that a type fact: it registers a private adapter type, which only it can
//! name, so every registration of the adapter is its `misc` field.

use core::marker::PhantomData;

use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

/// The files of a misc device registered with [`MiscRegistration`].
pub(crate) trait MiscFile: Sized + Send + Sync + 'static {
    /// The registration's data, lent to [`MiscFile::open`].
    type Data: Send + Sync + 'static;

    /// Opens a file of the device; what it returns is the file's private
    /// data until [`MiscFile::release`].
    fn open(file: &File, data: &Self::Data) -> Result<Pin<KBox<Self>>>;

    /// The file is closed.
    fn release(this: Pin<KBox<Self>>, file: &File);

    /// An ioctl on the file.
    fn ioctl(this: Pin<&Self>, file: &File, cmd: u32, arg: usize) -> Result<isize>;
}

/// The type registered with the misc core. Private: only
/// [`MiscRegistration`] registers it, so every
/// `MiscDeviceRegistration<Adapter<F>>` is the `misc` field of a
/// `MiscRegistration<F>`.
struct Adapter<F>(PhantomData<F>);

#[vtable]
impl<F: MiscFile> MiscDevice for Adapter<F> {
    type Ptr = Pin<KBox<F>>;

    fn open(file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<F>>> {
        let misc = core::ptr::from_ref(misc).cast_mut();
        // SAFETY: Every registration of `Adapter<F>` is the `misc` field of
        // a `MiscRegistration<F>` (the type is private to this module, which
        // registers it only there), which outlives its registration; the misc
        // core holds its lock during `open()`, so the registration is alive.
        let this = unsafe { &*kernel::container_of!(misc, MiscRegistration<F>, misc) };
        F::open(file, &this.data)
    }

    fn release(this: Pin<KBox<F>>, file: &File) {
        F::release(this, file)
    }

    fn ioctl(this: Pin<&F>, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        F::ioctl(this, file, cmd, arg)
    }
}

/// A registered misc device whose files are `F`s, and the data their
/// `open()` sees.
///
/// Holds the misc registration and the data; dropping it deregisters the
/// device (`misc_deregister()`, after which no file opens), then drops the
/// data. Files already open keep only what `open()` took from the data;
/// they pin the module that registered the device.
///
/// # Invariants
///
/// `data` is initialised before `misc` is registered and dropped after it
/// is deregistered.
#[pin_data]
pub(crate) struct MiscRegistration<F: MiscFile> {
    #[pin]
    misc: MiscDeviceRegistration<Adapter<F>>,
    data: F::Data,
}

impl<F: MiscFile> MiscRegistration<F> {
    /// Registers the device `/dev/<name>` with `data`.
    pub(crate) fn register(name: &'static CStr, data: F::Data) -> impl PinInit<Self, Error> {
        // INVARIANT: `data` is written first; `misc` is declared first, so
        // it drops first.
        try_pin_init!(Self {
            data,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name }),
        })
    }
}

#[kunit_tests(rsva_sim_miscdevice)]
mod tests {
    use super::*;

    /// A file type that never opens.
    struct Closed;

    impl MiscFile for Closed {
        type Data = u32;

        fn open(_file: &File, _data: &u32) -> Result<Pin<KBox<Self>>> {
            Err(ENXIO)
        }

        fn release(_this: Pin<KBox<Self>>, _file: &File) {}

        fn ioctl(_this: Pin<&Self>, _file: &File, _cmd: u32, _arg: usize) -> Result<isize> {
            Err(ENOTTY)
        }
    }

    /// A registration holds its data, and dropping it deregisters the
    /// device: the name is free again.
    #[test]
    fn registration_holds_data_and_deregisters() -> Result {
        for round in 0..2u32 {
            let reg = KBox::pin_init(
                MiscRegistration::<Closed>::register(c"rsva_sim_kunit_misc", 7 + round),
                GFP_KERNEL,
            )?;
            assert_eq!(reg.data, 7 + round);
        }
        Ok(())
    }
}
