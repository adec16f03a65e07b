// SPDX-License-Identifier: GPL-2.0

//! rsva: shared virtual addressing (SVA), PASIDs, HMM mirroring and IOMMU
//! DMA ownership, with the lifetime rules of the C implementation enforced by
//! types, and a C API for drivers (`include/rsva.h`).
//!
//! This is the crate root of `rsva.ko`. It owns the module's debugfs
//! directory, `/sys/kernel/debug/rsva/`:
//!
//! - `version`: the module's name and version.
//! - `pasid_range`: the PASID range allocations draw from, as
//!   `"MIN MAX COUNT\n"`; writing `"MIN MAX"` sets it, and a write of an
//!   invalid range fails with `EINVAL` and leaves the range as it was.

use core::fmt;

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    new_mutex,
    prelude::*,
    sync::Mutex,
    uaccess::UserSliceReader,
};

mod c_api;
mod pasid;

use pasid::PasidRange;

module! {
    type: Rsva,
    name: "rsva",
    authors: ["The rsva developers"],
    description: "Shared virtual addressing, PASIDs, HMM mirror and DMA ownership in Rust",
    license: "GPL",
}

/// The version `debugfs/rsva/version` reports.
const VERSION: &str = "0.1.0";

/// The module: its debugfs directory and files, removed on unload.
struct Rsva {
    _version: Pin<KBox<File<()>>>,
    _pasid_range: Pin<KBox<File<Mutex<PasidRange>>>>,
    _dir: Dir,
}

fn show_version(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "rsva {VERSION}")
}

fn show_pasid_range(range: &Mutex<PasidRange>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let r = *range.lock();
    writeln!(f, "{} {} {}", r.min(), r.max(), r.count())
}

/// Parses `"MIN MAX"` (decimal, surrounding white space allowed).
fn parse_range(text: &[u8]) -> Result<PasidRange> {
    let text = core::str::from_utf8(text).map_err(|_| EINVAL)?;
    let mut words = text.split_whitespace();
    let mut next = || -> Result<u32> { words.next().ok_or(EINVAL)?.parse().map_err(|_| EINVAL) };
    let (min, max) = (next()?, next()?);
    if words.next().is_some() {
        return Err(EINVAL);
    }
    PasidRange::new(min, max)
}

fn store_pasid_range(range: &Mutex<PasidRange>, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 32];
    let len = reader.len();
    if len >= buf.len() {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..len])?;
    *range.lock() = parse_range(&buf[..len])?;
    Ok(())
}

impl kernel::Module for Rsva {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let dir = Dir::new(c"rsva");
        let version = KBox::pin_init(
            dir.read_callback_file(c"version", (), &show_version),
            GFP_KERNEL,
        )?;
        let pasid_range = KBox::pin_init(
            dir.read_write_callback_file(
                c"pasid_range",
                new_mutex!(PasidRange::FULL),
                &show_pasid_range,
                &store_pasid_range,
            ),
            GFP_KERNEL,
        )?;
        pr_info!("rsva {VERSION} loaded\n");
        Ok(Self {
            _version: version,
            _pasid_range: pasid_range,
            _dir: dir,
        })
    }
}

impl Drop for Rsva {
    fn drop(&mut self) {
        pr_info!("rsva unloaded\n");
    }
}

#[kunit_tests(rsva_debugfs_parse)]
mod tests {
    use super::*;

    #[test]
    fn parses_two_numbers() {
        assert_eq!(parse_range(b"1 1048575"), Ok(PasidRange::FULL));
        assert_eq!(parse_range(b"  16\t31\n"), PasidRange::new(16, 31));
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(parse_range(b""), Err(EINVAL));
        assert_eq!(parse_range(b"5"), Err(EINVAL));
        assert_eq!(parse_range(b"1 2 3"), Err(EINVAL));
        assert_eq!(parse_range(b"a b"), Err(EINVAL));
        assert_eq!(parse_range(b"-1 5"), Err(EINVAL));
        assert_eq!(parse_range(b"1 99999999999"), Err(EINVAL));
        assert_eq!(parse_range(&[0xff, b' ', b'1']), Err(EINVAL));
    }

    #[test]
    fn rejects_invalid_ranges() {
        assert_eq!(parse_range(b"0 5"), Err(EINVAL));
        assert_eq!(parse_range(b"9 8"), Err(EINVAL));
    }
}
