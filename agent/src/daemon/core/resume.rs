//! Whether an instance resumes as master after a daemon restart: the pinned
//! datapath kept the previous daemon's heartbeat and the kernel's record of
//! other routers, and together they say whether a backup can have taken
//! over yet.

use agent_common::Heartbeat;

use crate::datapath::PeerRecord;

/// Resume when this node was master (a heartbeat), its last advert is
/// younger than the earliest moment a backup could take over (its own
/// Master_Down_Interval: every backup's is at least as long), the kernel
/// has not fenced it, and no router has spoken as master since: one that
/// did has taken over, or is about to, and this node starts as backup
/// instead of moving the addresses a second time.
pub fn may_resume(heartbeat: Option<Heartbeat>, peer: Option<PeerRecord>, now_ns: u64) -> bool {
    let Some(heartbeat) = heartbeat else {
        return false;
    };
    if heartbeat.fenced != 0 || heartbeat.priority == 0 {
        return false;
    }
    if now_ns.saturating_sub(heartbeat.last_advert_ns) >= heartbeat.takeover_ns {
        return false;
    }
    !peer.is_some_and(|peer| peer.last_seen_ns > heartbeat.last_advert_ns && peer.priority > 0)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::datapath::address_to_key;
    use crate::vrrp::{ChecksumForm, Version};

    const MS: u64 = 1_000_000;

    fn heartbeat(last_ms: u64, takeover_ms: u64, priority: u8, fenced: bool) -> Heartbeat {
        Heartbeat {
            last_advert_ns: last_ms * MS,
            interval_ns: 1000 * MS,
            takeover_ns: takeover_ms * MS,
            hold_ns: (takeover_ms + 1000) * MS,
            primary: address_to_key(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))).1,
            priority,
            fenced: u8::from(fenced),
            _pad: [0; 6],
        }
    }

    fn peer(seen_ms: u64, priority: u8, last_octet: u8) -> PeerRecord {
        PeerRecord {
            source: IpAddr::V4(Ipv4Addr::new(192, 0, 2, last_octet)),
            version: Version::V3,
            checksum_form: ChecksumForm::WithPseudoHeader,
            interval_cs: 100,
            priority,
            last_seen_ns: seen_ms * MS,
            adverts: 1,
        }
    }

    /// One row: what the pinned maps hold at restart (heartbeat, peer), the
    /// time in ms, and whether to resume.
    type Row = (
        &'static str,
        Option<Heartbeat>,
        Option<PeerRecord>,
        u64,
        bool,
    );

    #[test]
    fn resume_only_while_no_backup_can_have_taken_over() {
        let cases: [Row; 10] = [
            (
                "fresh heartbeat, nobody else",
                Some(heartbeat(1000, 3600, 150, false)),
                None,
                1500,
                true,
            ),
            ("never master", None, None, 1500, false),
            (
                "heartbeat older than the earliest takeover",
                Some(heartbeat(1000, 3600, 150, false)),
                None,
                4600,
                false,
            ),
            (
                "fenced by a winning advert",
                Some(heartbeat(1000, 3600, 150, true)),
                None,
                1500,
                false,
            ),
            (
                "last advert was priority 0",
                Some(heartbeat(1000, 3600, 0, false)),
                None,
                1500,
                false,
            ),
            (
                "higher priority spoke since",
                Some(heartbeat(1000, 3600, 150, false)),
                Some(peer(1200, 200, 2)),
                1500,
                false,
            ),
            (
                "equal priority, higher address spoke since",
                Some(heartbeat(1000, 3600, 150, false)),
                Some(peer(1200, 150, 9)),
                1500,
                false,
            ),
            (
                "lower priority spoke since (it took over)",
                Some(heartbeat(1000, 3600, 150, false)),
                Some(peer(1200, 100, 2)),
                1500,
                false,
            ),
            (
                "a router spoke before our last advert",
                Some(heartbeat(1000, 3600, 150, false)),
                Some(peer(900, 200, 2)),
                1500,
                true,
            ),
            (
                "a router resigned since (priority 0)",
                Some(heartbeat(1000, 3600, 150, false)),
                Some(peer(1200, 0, 2)),
                1500,
                true,
            ),
        ];
        for (name, heartbeat, peer, now_ms, expected) in cases {
            assert_eq!(may_resume(heartbeat, peer, now_ms * MS), expected, "{name}");
        }
    }
}
