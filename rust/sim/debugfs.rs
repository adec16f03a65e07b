// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/rsva_sim/`: what the simulated hardware holds.
//!
//! - `personality`: the IOMMU driver imitated, `intel`, `amd` or `arm`.
//! - `devN/pasid_table`: one line per PASID, `PASID active|cleared|abort`
//!   (`cleared`: blocked by the mm's release, Intel; `abort`: the same,
//!   SMMUv3; AMD's release removes the entry).
//! - `devN/iotlb`: hits, misses, flushes, stale walks, entries in use.
//! - `devN/faults`: the total reported, then the last faults, oldest first.
//! - `devN/counters`: bytes moved, releases seen, stale translations,
//!   accesses through a walk an invalidation raced, faults not reported,
//!   PASID drains, the device's group, then the page request interface:
//!   pages requested, groups sent, responses by code, and the three that
//!   are always bugs (stray, undrained, timed out).
//! - `groupN/dma_owner`: whether the group's DMA is claimed by an owner.

#![forbid(unsafe_code)]

use core::fmt;

use kernel::{
    debugfs::{Dir, File},
    prelude::*,
    str::CString,
    sync::{atomic::Relaxed, Arc},
};

use crate::{
    device::{SimDevice, SimGroup},
    personality::Personality,
};

fn show_pasid_table(dev: &Arc<SimDevice>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut r = Ok(());
    dev.for_each_entry(|pasid, blocked| {
        if r.is_ok() {
            r = writeln!(f, "{} {}", pasid, blocked.map_or("active", |b| b.name()));
        }
    });
    r
}

fn show_iotlb(dev: &Arc<SimDevice>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let (s, used) = dev.iotlb_stats();
    writeln!(
        f,
        "hits {}\nmisses {}\nflushes {}\nstale_walks {}\nentries {}",
        s.hits, s.misses, s.flushes, s.stale_walks, used
    )
}

fn show_faults(dev: &Arc<SimDevice>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "total {}", dev.fault_total())?;
    let mut r = Ok(());
    dev.for_each_fault(|fault| {
        if r.is_ok() {
            r = writeln!(f, "{fault}");
        }
    });
    r
}

fn show_counters(dev: &Arc<SimDevice>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "bytes {}\nreleases {}\nstale_translations {}\nstale_walk_accesses {}\n\
         faults_suppressed {}\npasid_drains {}\ngroup {}\npasid_bits {}\n\
         page_requests {}\npage_groups {}\nresp_success {}\nresp_invalid {}\n\
         resp_failure {}\nresp_stray {}\nresp_undrained {}\nresp_timeouts {}",
        dev.counters.bytes.load(Relaxed),
        dev.counters.releases.load(Relaxed),
        dev.counters.stale_translations.load(Relaxed),
        dev.counters.stale_walk_accesses.load(Relaxed),
        dev.counters.faults_suppressed.load(Relaxed),
        dev.counters.pasid_drains.load(Relaxed),
        dev.group.id,
        dev.pasid_bits,
        dev.prq.requests.load(Relaxed),
        dev.prq.groups.load(Relaxed),
        dev.prq.success.load(Relaxed),
        dev.prq.invalid.load(Relaxed),
        dev.prq.failure.load(Relaxed),
        dev.prq.stray.load(Relaxed),
        dev.prq.undrained.load(Relaxed),
        dev.prq.timeouts.load(Relaxed),
    )
}

fn show_personality(p: &Arc<Personality>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", p.name())
}

fn show_dma_owner(group: &Arc<SimGroup>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "claimed {}", u8::from(group.dma_owner_claimed()))
}

/// Files whose data is an `Arc<T>`.
type Files<T> = KVec<Pin<KBox<File<Arc<T>>>>>;

/// Adds a read-only file `name` in `dir` showing `data` with `show`.
fn add<T, F>(
    files: &mut Files<T>,
    dir: &Dir,
    name: &'static CStr,
    data: &Arc<T>,
    show: &'static F,
) -> Result
where
    T: Send + Sync + 'static,
    F: Fn(&Arc<T>, &mut fmt::Formatter<'_>) -> fmt::Result + Send + Sync,
{
    let file = KBox::pin_init(dir.read_callback_file(name, data.clone(), show), GFP_KERNEL)?;
    files.push(file, GFP_KERNEL)?;
    Ok(())
}

/// The debugfs tree; removed when dropped.
pub(crate) struct Debugfs {
    _personality: Files<Personality>,
    _dev_files: Files<SimDevice>,
    _group_files: Files<SimGroup>,
    _root: Dir,
}

impl Debugfs {
    pub(crate) fn new(devices: &[Arc<SimDevice>], groups: &[Arc<SimGroup>]) -> Result<Self> {
        let root = Dir::new(c"rsva_sim");
        let mut personality = KVec::new();
        let current = Arc::new(Personality::current(), GFP_KERNEL)?;
        add(
            &mut personality,
            &root,
            c"personality",
            &current,
            &show_personality,
        )?;
        let mut dev_files = KVec::new();
        for dev in devices {
            let dir = root.subdir(&CString::try_from_fmt(fmt!("dev{}", dev.id))?);
            add(&mut dev_files, &dir, c"pasid_table", dev, &show_pasid_table)?;
            add(&mut dev_files, &dir, c"iotlb", dev, &show_iotlb)?;
            add(&mut dev_files, &dir, c"faults", dev, &show_faults)?;
            add(&mut dev_files, &dir, c"counters", dev, &show_counters)?;
        }
        let mut group_files = KVec::new();
        for group in groups {
            let dir = root.subdir(&CString::try_from_fmt(fmt!("group{}", group.id))?);
            add(&mut group_files, &dir, c"dma_owner", group, &show_dma_owner)?;
        }
        Ok(Self {
            _personality: personality,
            _dev_files: dev_files,
            _group_files: group_files,
            _root: root,
        })
    }
}
