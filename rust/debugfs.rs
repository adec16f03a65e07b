// SPDX-License-Identifier: GPL-2.0

//! rsva's debugfs directory, `/sys/kernel/debug/rsva/`:
//!
//! - `version`: the module's name and version.
//! - `pasid_range`: the PASID range new PASIDs are drawn from, as
//!   `"MIN MAX COUNT\n"`; writing `"MIN MAX"` sets it, and a write of an
//!   invalid range fails with `EINVAL` and leaves the range as it was.
//! - `serve`: `1` while rsva serves `iommu_sva_bind_device()`; writing `0`
//!   or `1` switches (`EBUSY` while bonds of the other side live).
//! - `sva`: counters, one `name value` per line (binds, unbinds, live
//!   bonds, binds that shared a group attachment, SVA domains allocated,
//!   binds that reused a kept domain, domains kept now, PASIDs leased,
//!   leased mms on the IOMMU core's list for kernel page-table
//!   invalidation (those with bonds);
//!   I/O page faults (`iopf.rs`): groups served, page requests in them,
//!   responses by code, requests decided under the per-VMA lock and under
//!   the mmap lock).
//! - `mirrors`: the shared mirrors and their clients, the pages READ and
//!   WRITE copied under and after the mirror's lock, and the mirror
//!   devices' memory: device pages in use (`devmem_in_use`, both devices)
//!   and chunks of each (`devmem_chunksN`).
//! - `pasids`: one line per PASID rsva holds: `PASID UID BONDS`.
//! - `pasids_per_user`: how many PASIDs one user (real uid) may hold,
//!   initially the `pasids_per_user` parameter; writable.
//!
//! Writes need `CAP_SYS_ADMIN` (`EPERM`), whatever the file modes say.

#![forbid(unsafe_code)]

use core::fmt;

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
    uaccess::UserSliceReader,
};

use crate::{
    ffi::service,
    kext::glue,
    mirror::{dev as mirror_dev, hmm, registry},
    sva::{iopf, pasid::PasidRange},
};

/// The version `debugfs/rsva/version` reports.
pub(crate) const VERSION: &str = "0.2.0";

/// The directory and its files, removed when dropped.
pub(crate) struct Files {
    _files: KVec<Pin<KBox<File<()>>>>,
    _dir: Dir,
}

fn show_version(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "rsva {VERSION}")
}

fn show_mirrors(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let (mirrors, clients) = registry::counts();
    writeln!(f, "mirrors {mirrors}")?;
    writeln!(f, "clients {clients}")?;
    let copied = |c: &Atomic<u64>| c.load(Relaxed);
    writeln!(f, "copied_under_lock {}", copied(&hmm::COPIED_UNDER_LOCK))?;
    writeln!(f, "copied_after_lock {}", copied(&hmm::COPIED_AFTER_LOCK))?;
    writeln!(f, "bounce_refaults {}", copied(&hmm::BOUNCE_REFAULTS))?;
    let nodes = mirror_dev::memory_stats();
    writeln!(
        f,
        "devmem_in_use {}",
        nodes.iter().map(|n| n.in_use).sum::<usize>()
    )?;
    for (i, n) in nodes.iter().enumerate() {
        writeln!(f, "devmem_chunks{i} {}", n.chunks)?;
    }
    Ok(())
}

fn show_pasid_range(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let Some(s) = service() else {
        return Ok(());
    };
    let r = *s.sva.pasids.range.lock();
    writeln!(f, "{} {} {}", r.min(), r.max(), r.count())
}

/// Reads a short user write to one of rsva's settings into `buf`,
/// returning the bytes. `EPERM` without `CAP_SYS_ADMIN`: debugfs's file
/// modes let any task running as root write, also one whose capabilities
/// were dropped.
fn read_setting<'a>(reader: &mut UserSliceReader, buf: &'a mut [u8; 32]) -> Result<&'a [u8]> {
    if !glue::capable_sys_admin() {
        return Err(EPERM);
    }
    let len = reader.len();
    if len >= buf.len() {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..len])?;
    Ok(&buf[..len])
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

fn store_pasid_range(_: &(), reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 32];
    let range = parse_range(read_setting(reader, &mut buf)?)?;
    *service().ok_or(ENODEV)?.sva.pasids.range.lock() = range;
    Ok(())
}

fn show_serve(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", u8::from(service().is_some_and(|s| s.serving())))
}

fn store_serve(_: &(), reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 32];
    let on = match read_setting(reader, &mut buf)?.trim_ascii() {
        b"0" => false,
        b"1" => true,
        _ => return Err(EINVAL),
    };
    service().ok_or(ENODEV)?.set_serving(on)
}

fn show_sva(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let Some(s) = service() else {
        return Ok(());
    };
    let c = s.sva.counters();
    let (mut leased, mut kept, mut tracked) = (0, 0, 0);
    s.sva.pasids.for_each(|m| {
        leased += 1;
        kept += m.data().kept();
        tracked += usize::from(m.tracked());
    });
    writeln!(f, "serving {}", u8::from(s.serving()))?;
    writeln!(f, "binds {}", c.binds.load(Relaxed))?;
    writeln!(f, "unbinds {}", c.unbinds.load(Relaxed))?;
    writeln!(f, "live {}", c.live.load(Relaxed))?;
    writeln!(f, "shared {}", c.shared.load(Relaxed))?;
    writeln!(f, "domains {}", c.domains.load(Relaxed))?;
    writeln!(f, "reused {}", c.reused.load(Relaxed))?;
    writeln!(f, "kept {kept}")?;
    writeln!(f, "pasids {leased}")?;
    writeln!(f, "tracked {tracked}")?;
    let i = &iopf::COUNTERS;
    writeln!(f, "iopf_groups {}", i.groups.load(Relaxed))?;
    writeln!(f, "iopf_faults {}", i.faults.load(Relaxed))?;
    writeln!(f, "iopf_resp_success {}", i.resp_success.load(Relaxed))?;
    writeln!(f, "iopf_resp_invalid {}", i.resp_invalid.load(Relaxed))?;
    writeln!(f, "iopf_resp_failure {}", i.resp_failure.load(Relaxed))?;
    writeln!(f, "iopf_vma_lock {}", i.vma_lock.load(Relaxed))?;
    writeln!(f, "iopf_mmap_lock {}", i.mmap_lock.load(Relaxed))
}

fn show_pasids(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let Some(s) = service() else {
        return Ok(());
    };
    let mut res = Ok(());
    s.sva.pasids.for_each(|m| {
        if res.is_ok() {
            res = writeln!(f, "{} {} {}", m.pasid(), m.uid(), m.data().count());
        }
    });
    res
}

fn show_limit(_: &(), f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match service() {
        Some(s) => writeln!(f, "{}", s.sva.pasids.limit()),
        None => Ok(()),
    }
}

fn store_limit(_: &(), reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 32];
    let text = core::str::from_utf8(read_setting(reader, &mut buf)?).map_err(|_| EINVAL)?;
    let limit = text.trim().parse().map_err(|_| EINVAL)?;
    service().ok_or(ENODEV)?.sva.pasids.set_limit(limit);
    Ok(())
}

impl Files {
    /// Creates the directory and its files.
    pub(crate) fn new() -> Result<Self> {
        let dir = Dir::new(c"rsva");
        let mut files = KVec::new();
        let mut add = |file: Result<Pin<KBox<File<()>>>>| -> Result {
            files.push(file?, GFP_KERNEL)?;
            Ok(())
        };
        add(KBox::pin_init(
            dir.read_callback_file(c"version", (), &show_version),
            GFP_KERNEL,
        ))?;
        add(KBox::pin_init(
            dir.read_write_callback_file(c"pasid_range", (), &show_pasid_range, &store_pasid_range),
            GFP_KERNEL,
        ))?;
        add(KBox::pin_init(
            dir.read_write_callback_file(c"serve", (), &show_serve, &store_serve),
            GFP_KERNEL,
        ))?;
        add(KBox::pin_init(
            dir.read_callback_file(c"sva", (), &show_sva),
            GFP_KERNEL,
        ))?;
        add(KBox::pin_init(
            dir.read_callback_file(c"pasids", (), &show_pasids),
            GFP_KERNEL,
        ))?;
        add(KBox::pin_init(
            dir.read_write_callback_file(c"pasids_per_user", (), &show_limit, &store_limit),
            GFP_KERNEL,
        ))?;
        add(KBox::pin_init(
            dir.read_callback_file(c"mirrors", (), &show_mirrors),
            GFP_KERNEL,
        ))?;
        Ok(Self {
            _files: files,
            _dir: dir,
        })
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
