//! `LAST_SEEN`: the kernel's receive time of each configured instance's last
//! accepted advert, one `u64` per slot, read through a shared read-only
//! mapping of the map (`BPF_F_MMAPABLE`) with plain atomic loads.
//!
//! A backup's Master_Down check needs only this time; the full `PEERS`
//! record (source, priority, interval) changes rarely and arrives as a
//! ring-buffer event. Reading every record with `BPF_MAP_LOOKUP_BATCH` at
//! each wake-up was a fifth of a 200-instance backup's CPU; a load from
//! this mapping costs no syscall.
//!
//! Each instance (its [`InstanceKey`]) gets a slot for as long as it runs:
//! a reload that keeps the instance keeps its slot, and a daemon that
//! adopts pinned maps reuses the slot the filter an earlier daemon left
//! names, so the time found there still belongs to that instance. A slot
//! handed out afresh is zeroed first; freed slots are reused last (the
//! kernel may still be finishing a write through the old filter).

use std::{
    collections::{HashMap, VecDeque},
    io,
    os::fd::{AsRawFd, BorrowedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use agent_common::{InstanceKey, LAST_SEEN_ENTRIES};

/// The slots in use and the order free ones are handed out in.
#[derive(Debug)]
pub struct Slots {
    assigned: HashMap<InstanceKey, u32>,
    /// What the filters of an adopted `INSTANCES` map named: reused by the
    /// same instance, kept from everyone else until pruned.
    inherited: HashMap<InstanceKey, u32>,
    /// Never handed out yet: `next_fresh ..= limit`.
    next_fresh: u32,
    /// Handed out and given back, oldest first.
    freed: VecDeque<u32>,
    limit: u32,
}

/// How [`Slots::assign`] found a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    /// The instance already had it.
    Kept(u32),
    /// An earlier daemon's filter for this instance named it: its value is
    /// this instance's last receive time.
    Adopted(u32),
    /// A slot no one uses: its value must be zeroed before the filter
    /// points at it.
    Fresh(u32),
}

impl Assigned {
    pub fn slot(self) -> u32 {
        match self {
            Self::Kept(slot) | Self::Adopted(slot) | Self::Fresh(slot) => slot,
        }
    }
}

impl Default for Slots {
    fn default() -> Self {
        Self::with_limit(LAST_SEEN_ENTRIES - 1)
    }
}

impl Slots {
    /// Slots `1 ..= limit` (0 is the one nobody reads).
    pub fn with_limit(limit: u32) -> Self {
        Self {
            assigned: HashMap::new(),
            inherited: HashMap::new(),
            next_fresh: 1,
            freed: VecDeque::new(),
            limit,
        }
    }

    /// The slots an adopted map's filters name, by instance.
    pub fn inherit(&mut self, filters: impl IntoIterator<Item = (InstanceKey, u32)>) {
        self.inherited.extend(
            filters
                .into_iter()
                .filter(|(_, slot)| (1..=self.limit).contains(slot)),
        );
    }

    /// The slot of `key`'s instance, handing one out if it has none; `None`
    /// when every slot is taken.
    pub fn assign(&mut self, key: InstanceKey) -> Option<Assigned> {
        if let Some(slot) = self.assigned.get(&key) {
            return Some(Assigned::Kept(*slot));
        }
        if let Some(slot) = self.inherited.remove(&key)
            && !self.assigned.values().any(|taken| *taken == slot)
        {
            self.assigned.insert(key, slot);
            return Some(Assigned::Adopted(slot));
        }
        let slot = self.fresh().or_else(|| self.reuse())?;
        self.assigned.insert(key, slot);
        Some(Assigned::Fresh(slot))
    }

    /// The oldest freed slot nobody holds. Only slots `fresh` has passed
    /// are ever queued (see `free`), so none is handed out twice.
    fn reuse(&mut self) -> Option<u32> {
        while let Some(slot) = self.freed.pop_front() {
            let taken = self.inherited.values().any(|held| *held == slot)
                || self.assigned.values().any(|held| *held == slot);
            if !taken {
                return Some(slot);
            }
        }
        None
    }

    /// A slot no instance holds any more. One `fresh` has not reached yet
    /// (an adopted slot above it) is left for `fresh` to hand out: queued
    /// as well, it would later go to a second instance.
    fn free(&mut self, slot: u32) {
        if slot < self.next_fresh {
            self.freed.push_back(slot);
        }
    }

    fn fresh(&mut self) -> Option<u32> {
        while self.next_fresh <= self.limit {
            let slot = self.next_fresh;
            self.next_fresh += 1;
            let taken = self.inherited.values().any(|held| *held == slot)
                || self.assigned.values().any(|held| *held == slot);
            if !taken {
                return Some(slot);
            }
        }
        None
    }

    /// `key`'s instance is gone: its slot is reused after every other.
    pub fn release(&mut self, key: &InstanceKey) {
        if let Some(slot) = self.assigned.remove(key) {
            self.free(slot);
        }
    }

    /// The earlier daemon's filters that no instance took over were
    /// removed: their slots are free.
    pub fn release_inherited(&mut self) {
        let slots: Vec<u32> = self.inherited.drain().map(|(_, slot)| slot).collect();
        for slot in slots {
            if !self.assigned.values().any(|taken| *taken == slot) {
                self.free(slot);
            }
        }
    }

    pub fn get(&self, key: &InstanceKey) -> Option<u32> {
        self.assigned.get(key).copied()
    }
}

/// A read-only shared mapping of the `LAST_SEEN` array.
#[derive(Debug)]
pub struct LastSeenMap {
    base: NonNull<AtomicU64>,
    entries: u32,
    bytes: usize,
}

// SAFETY: the mapping is only ever read, through atomic loads, and lives
// until drop; nothing in it is tied to the thread that created it.
unsafe impl Send for LastSeenMap {}
// SAFETY: as above: shared reads are atomic loads.
unsafe impl Sync for LastSeenMap {}

impl LastSeenMap {
    /// Maps `entries` u64 values of the array map behind `fd`, which must
    /// have been created with `BPF_F_MMAPABLE` (the kernel refuses the
    /// mapping otherwise). aya has no mapping API, so this calls mmap on
    /// the map's descriptor; the mapping keeps the map alive by itself.
    pub fn map(fd: BorrowedFd<'_>, entries: u32) -> io::Result<Self> {
        let bytes = entries as usize * size_of::<u64>();
        // SAFETY: a fresh read-only shared mapping of a map descriptor;
        // the kernel checks the length against the map's size.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Self {
            base,
            entries,
            bytes,
        })
    }

    /// The value at `slot`: the kernel's receive time (CLOCK_MONOTONIC ns)
    /// of the last advert, 0 before the first.
    pub fn get(&self, slot: u32) -> Option<u64> {
        if slot >= self.entries {
            return None;
        }
        // SAFETY: `slot` is within the mapping, which is page aligned and
        // so 8-byte aligned for every entry; the kernel writes whole u64s.
        let value = unsafe { &*self.base.as_ptr().add(slot as usize) };
        Some(value.load(Ordering::Acquire))
    }
}

impl Drop for LastSeenMap {
    fn drop(&mut self) {
        // SAFETY: the mapping created in `map`, unmapped once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}

#[cfg(test)]
mod tests {
    use agent_common::FAMILY_IPV4;

    use super::*;

    fn key(vrid: u8) -> InstanceKey {
        InstanceKey::new(2, vrid, FAMILY_IPV4)
    }

    #[test]
    fn an_instance_keeps_its_slot_and_freed_slots_come_back_last() {
        let mut slots = Slots::with_limit(3);
        assert_eq!(slots.assign(key(1)), Some(Assigned::Fresh(1)));
        assert_eq!(slots.assign(key(2)), Some(Assigned::Fresh(2)));
        assert_eq!(slots.assign(key(1)), Some(Assigned::Kept(1)));
        slots.release(&key(1));
        assert_eq!(slots.get(&key(1)), None);
        // Slot 3 was never used: it goes before the freed slot 1.
        assert_eq!(slots.assign(key(3)), Some(Assigned::Fresh(3)));
        assert_eq!(slots.assign(key(4)), Some(Assigned::Fresh(1)));
        assert_eq!(slots.assign(key(5)), None, "every slot is taken");
        slots.release(&key(2));
        assert_eq!(slots.assign(key(5)), Some(Assigned::Fresh(2)));
    }

    /// A slot freed before `fresh` reached it is handed out once, by
    /// `fresh`, and never again from the freed queue while it is held.
    #[test]
    fn a_slot_freed_ahead_of_the_fresh_ones_goes_to_one_instance() {
        // An earlier daemon's instance held slot 3 and is gone from the
        // configuration: its filter is pruned.
        let mut slots = Slots::with_limit(4);
        slots.inherit([(key(9), 3)]);
        slots.release_inherited();
        let mut held: Vec<u32> = (1..=4)
            .map(|vrid| match slots.assign(key(vrid)) {
                Some(Assigned::Fresh(slot)) => slot,
                other => panic!("instance {vrid}: {other:?}"),
            })
            .collect();
        assert_eq!(slots.assign(key(5)), None, "four slots, four instances");
        // The same through an adopted slot released before `fresh` got there.
        let mut adopted = Slots::with_limit(4);
        adopted.inherit([(key(9), 3)]);
        assert_eq!(adopted.assign(key(9)), Some(Assigned::Adopted(3)));
        adopted.release(&key(9));
        for vrid in 1..=4 {
            assert!(adopted.assign(key(vrid)).is_some());
        }
        assert_eq!(adopted.assign(key(5)), None);
        let mut adopted_held: Vec<u32> =
            (1..=4).filter_map(|vrid| adopted.get(&key(vrid))).collect();
        held.sort_unstable();
        adopted_held.sort_unstable();
        assert_eq!(held, [1, 2, 3, 4]);
        assert_eq!(adopted_held, [1, 2, 3, 4]);
    }

    #[test]
    fn adopted_slots_stay_with_their_instance_and_are_kept_from_others() {
        let mut slots = Slots::with_limit(4);
        slots.inherit([(key(7), 1), (key(8), 3), (key(9), 0), (key(10), 99)]);
        // Slots 1 and 3 belong to instances of the earlier daemon.
        assert_eq!(slots.assign(key(1)), Some(Assigned::Fresh(2)));
        assert_eq!(slots.assign(key(8)), Some(Assigned::Adopted(3)));
        assert_eq!(slots.assign(key(2)), Some(Assigned::Fresh(4)));
        assert_eq!(
            slots.assign(key(3)),
            None,
            "slot 1 is still the kept filter's"
        );
        // Its filter was pruned: slot 1 is free.
        slots.release_inherited();
        assert_eq!(slots.assign(key(3)), Some(Assigned::Fresh(1)));
        // The invalid slots (0, beyond the map) were never inherited.
        assert_eq!(slots.assign(key(9)), None);
    }
}
