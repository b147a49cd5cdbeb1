//! Every record of the kernel's `PEERS` map in one `BPF_MAP_LOOKUP_BATCH`
//! call. A backup of 200 instances at advert_int 0.01 checks each master's
//! record every ~30 ms (when its Master_Down timer is due): one
//! `BPF_MAP_LOOKUP_ELEM` each was 6,000 syscalls a second, most of the
//! daemon's CPU. The due timers of one wake-up are served from one snapshot
//! instead (see `KernelPeers` in `runtime.rs`).
//!
//! The map is found among the process's own descriptors and opened again
//! by ID (a second descriptor of the same map), so nothing here depends on
//! how the datapath loaded or adopted it. A `Datapath` accessor for the map
//! descriptor would be the tidier way to get it.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    io,
    os::fd::{AsFd, AsRawFd},
};

use agent_common::{PeerKey, PeerState, map_names};
use aya::maps::{MapFd, MapInfo};

/// `BPF_MAP_LOOKUP_BATCH` (include/uapi/linux/bpf.h, since Linux 5.6).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// Records one call can return at first.
const INITIAL_ROOM: usize = 64;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

pub struct PeerBatch {
    map: MapFd,
    max_entries: usize,
    /// Room for one call's records: grows (up to `max_entries`) until one
    /// call returns the whole map. Not sized to `max_entries` up front:
    /// that is 4,096 records, 192 KiB of memory a few hundred need.
    keys: Vec<PeerKey>,
    values: Vec<PeerState>,
    /// The last read, by [`code`].
    records: HashMap<u64, PeerState, BuildHasherDefault<KeyHasher>>,
}

/// A key as one number (its fields, not its padding).
fn code(key: &PeerKey) -> u64 {
    (u64::from(key.ifindex) << 16) | (u64::from(key.family) << 8) | u64::from(key.vrid)
}

/// Hashes a [`code`] with one multiply, where SipHash would cost more than
/// the rest of a lookup.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte) ^ self.0.rotate_left(8));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl PeerBatch {
    /// Opens the `PEERS` map of this process's datapath: among the BPF map
    /// descriptors the process holds (`/proc/self/fdinfo` names their IDs),
    /// the one named `PEERS` with its key and value sizes. Other agents on
    /// the host (one per network namespace) have maps of the same name, so
    /// the host-wide list of maps would not do.
    pub fn open() -> io::Result<Self> {
        let other = |error: &dyn std::fmt::Display| io::Error::other(error.to_string());
        for entry in std::fs::read_dir("/proc/self/fd")? {
            let Ok(entry) = entry else { continue };
            let is_map = std::fs::read_link(entry.path())
                .is_ok_and(|target| target.as_os_str() == "anon_inode:bpf-map");
            if !is_map {
                continue;
            }
            let fdinfo = std::path::Path::new("/proc/self/fdinfo").join(entry.file_name());
            let Ok(text) = std::fs::read_to_string(fdinfo) else {
                continue;
            };
            let Some(id) = text
                .lines()
                .find_map(|line| line.strip_prefix("map_id:"))
                .and_then(|id| id.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(map) = MapInfo::from_id(id) else {
                continue;
            };
            if map.name_as_str() != Some(map_names::PEERS)
                || map.key_size() as usize != size_of::<PeerKey>()
                || map.value_size() as usize != size_of::<PeerState>()
            {
                continue;
            }
            let max_entries = (map.max_entries() as usize).max(1);
            let room = INITIAL_ROOM.min(max_entries);
            return Ok(Self {
                map: map.fd().map_err(|e| other(&e))?,
                max_entries,
                keys: vec![PeerKey::default(); room],
                values: vec![PeerState::default(); room],
                records: HashMap::default(),
            });
        }
        Err(other(&"no PEERS map among this process's descriptors"))
    }

    /// Reads every record. A hash map is read bucket by bucket; with room
    /// for `max_entries` records, one call returns them all.
    pub fn read(&mut self) -> io::Result<()> {
        self.records.clear();
        let mut token: u32 = 0;
        let mut first = true;
        let mut calls = 0;
        loop {
            let mut attr = BatchAttr {
                in_batch: if first { 0 } else { &raw const token as u64 },
                out_batch: &raw mut token as u64,
                keys: self.keys.as_mut_ptr() as u64,
                values: self.values.as_mut_ptr() as u64,
                count: self.keys.len() as u32,
                map_fd: self.map.as_fd().as_raw_fd() as u32,
                ..BatchAttr::default()
            };
            // SAFETY: `attr` is a valid `bpf_attr` prefix for this command;
            // `keys` and `values` have room for `count` records of the map's
            // key and value sizes (checked at open), `token` for the u32
            // batch token of a hash map.
            let result = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_MAP_LOOKUP_BATCH,
                    &raw mut attr,
                    size_of::<BatchAttr>(),
                )
            };
            let done = if result < 0 {
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::ENOENT) => true,
                    // One bucket holds more records than there is room for.
                    Some(libc::ENOSPC) if self.keys.len() < self.max_entries => {
                        self.grow();
                        continue;
                    }
                    _ => return Err(error),
                }
            } else {
                false
            };
            let count = (attr.count as usize).min(self.keys.len());
            self.records.extend(
                self.keys[..count]
                    .iter()
                    .map(code)
                    .zip(self.values[..count].iter().copied()),
            );
            if done || count == 0 {
                break;
            }
            first = false;
            calls += 1;
        }
        if calls > 0 && self.keys.len() < self.max_entries {
            // Next time in one call.
            self.grow();
        }
        Ok(())
    }

    fn grow(&mut self) {
        let room = (self.keys.len() * 2).min(self.max_entries);
        self.keys.resize(room, PeerKey::default());
        self.values.resize(room, PeerState::default());
    }

    /// The record of `key` in the last read.
    pub fn get(&self, key: &PeerKey) -> Option<PeerState> {
        self.records.get(&code(key)).copied()
    }
}
