//! The ring buffer through which `vrrp_rx` reports peer changes.

use agent_common::{PeerEvent, map_names};
use aya::{
    Ebpf,
    maps::{MapData, RingBuf},
};
use tokio::io::unix::AsyncFd;
use tracing::warn;

use super::DatapathError;

/// Peer-change events, in the order the kernel queued them.
pub struct EventStream {
    ring: AsyncFd<RingBuf<MapData>>,
    /// An event taken out of the ring by [`EventStream::is_drained`] and
    /// not yet handed out.
    lookahead: Option<PeerEvent>,
}

impl EventStream {
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, DatapathError> {
        let map = ebpf
            .take_map(map_names::EVENTS)
            .ok_or(DatapathError::Missing {
                kind: "map",
                name: map_names::EVENTS,
            })?;
        let ring = RingBuf::try_from(map).map_err(|source| DatapathError::Map {
            map: map_names::EVENTS,
            source,
        })?;
        // SAFETY: the ring buffer owns its fd and keeps it open for as long
        // as the AsyncFd that owns the ring buffer exists.
        let ring = unsafe { AsyncFd::register(ring) }.map_err(|error| DatapathError::Map {
            map: map_names::EVENTS,
            source: aya::maps::MapError::IoError(error.into()),
        })?;
        Ok(Self {
            ring,
            lookahead: None,
        })
    }

    /// Waits for the next event. Records of an unexpected size (which would
    /// mean a kernel object from another build) are skipped with a warning.
    pub async fn next(&mut self) -> std::io::Result<PeerEvent> {
        loop {
            if let Some(event) = self.try_next() {
                return Ok(event);
            }
            let mut guard = self.ring.readable_mut().await?;
            guard.clear_ready();
        }
    }

    /// The next queued event, without waiting.
    pub fn try_next(&mut self) -> Option<PeerEvent> {
        self.lookahead.take().or_else(|| self.pull())
    }

    /// Whether no event is queued right now. Reads the ring's positions in
    /// shared memory, no syscall; an event it finds is kept for the next
    /// call of [`next`](Self::next) or [`try_next`](Self::try_next).
    pub fn is_drained(&mut self) -> bool {
        if self.lookahead.is_none() {
            self.lookahead = self.pull();
        }
        self.lookahead.is_none()
    }

    fn pull(&mut self) -> Option<PeerEvent> {
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            match decode(&item) {
                Some(event) => return Some(event),
                None => warn!(
                    bytes = item.len(),
                    "skipping ring-buffer record of unexpected size"
                ),
            }
        }
        None
    }
}

fn decode(bytes: &[u8]) -> Option<PeerEvent> {
    if bytes.len() != std::mem::size_of::<PeerEvent>() {
        return None;
    }
    // SAFETY: the length matches and PeerEvent is plain old data valid for
    // every bit pattern; read_unaligned copes with any record alignment.
    Some(unsafe { bytes.as_ptr().cast::<PeerEvent>().read_unaligned() })
}
