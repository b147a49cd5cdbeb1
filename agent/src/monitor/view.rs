//! What the monitor shows: one row per virtual router, and the counters.

use std::{collections::HashMap, fmt::Write as _, io::IsTerminal};

use agent_common::{Counter, FAMILY_IPV4};
use serde::Serialize;

use crate::{
    datapath::{CounterSnapshot, PeerRecord},
    vrrp::ChecksumForm,
};

/// One virtual router as the kernel last saw it.
#[derive(Debug, Clone, Serialize)]
pub struct RouterRow {
    pub interface: String,
    pub vrid: u8,
    pub family: &'static str,
    pub version: u8,
    pub master: String,
    pub priority: u8,
    pub advert_interval_ms: u32,
    pub last_seen_ms: u64,
    pub adverts: u64,
    /// `None` until two samples exist.
    pub adverts_per_sec: Option<f64>,
    /// `pseudo_header` or `message_only`: the VRRPv3-over-IPv4 checksum form.
    pub checksum: &'static str,
    /// `silent` once no advert came for Master_Down_Interval (3 intervals
    /// plus the skew of a priority-255 backup, the shortest possible).
    pub status: &'static str,
}

impl RouterRow {
    pub fn new(
        interface: &str,
        (_, family, vrid): (u32, u8, u8),
        peer: &PeerRecord,
        now_ns: u64,
        adverts_per_sec: Option<f64>,
    ) -> Self {
        let last_seen_ms = now_ns.saturating_sub(peer.last_seen_ns) / 1_000_000;
        let advert_interval_ms = u32::from(peer.interval_cs) * 10;
        let silent_after_ms =
            u64::from(advert_interval_ms) * 3 + u64::from(advert_interval_ms) / 256;
        Self {
            interface: interface.to_owned(),
            vrid,
            family: if family == FAMILY_IPV4 {
                "ipv4"
            } else {
                "ipv6"
            },
            version: peer.version.wire_value(),
            master: peer.source.to_string(),
            priority: peer.priority,
            advert_interval_ms,
            last_seen_ms,
            adverts: peer.adverts,
            adverts_per_sec,
            checksum: match peer.checksum_form {
                ChecksumForm::WithPseudoHeader => "pseudo_header",
                ChecksumForm::MessageOnly => "message_only",
            },
            status: if last_seen_ms > silent_after_ms {
                "silent"
            } else {
                "alive"
            },
        }
    }
}

/// Turns successive advert counts into rates.
#[derive(Default)]
pub struct RateTracker {
    previous: HashMap<(u32, u8, u8), (u64, u64)>,
}

impl RateTracker {
    pub fn rate(&mut self, key: (u32, u8, u8), peer: &PeerRecord, now_ns: u64) -> Option<f64> {
        let previous = self.previous.insert(key, (peer.adverts, now_ns));
        let (adverts, at) = previous?;
        let elapsed = now_ns.checked_sub(at).filter(|elapsed| *elapsed > 0)? as f64 / 1e9;
        Some(peer.adverts.saturating_sub(adverts) as f64 / elapsed)
    }
}

pub fn clear_screen_if_terminal() -> &'static str {
    if std::io::stdout().is_terminal() {
        "\x1b[2J\x1b[H"
    } else {
        ""
    }
}

pub fn render_table(interface: &str, rows: &[RouterRow], counters: &CounterSnapshot) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "vrrp-agent monitor on {interface} (observe-only: nothing is dropped)"
    );
    let _ = writeln!(
        text,
        "{:>4} {:<5} {:>2} {:<40} {:>4} {:>9} {:>10} {:>10} {:>8} {:<6}",
        "VRID", "FAM", "V", "MASTER", "PRIO", "INTERVAL", "LAST SEEN", "ADVERTS", "ADV/S", "STATUS"
    );
    if rows.is_empty() {
        let _ = writeln!(text, "  (no VRRP adverts seen yet)");
    }
    for row in rows {
        let rate = row
            .adverts_per_sec
            .map_or_else(|| "-".to_owned(), |rate| format!("{rate:.1}"));
        let _ = writeln!(
            text,
            "{:>4} {:<5} {:>2} {:<40} {:>4} {:>7}ms {:>8}ms {:>10} {:>8} {:<6}",
            row.vrid,
            row.family,
            row.version,
            row.master,
            row.priority,
            row.advert_interval_ms,
            row.last_seen_ms,
            row.adverts,
            rate,
            row.status
        );
    }
    let _ = writeln!(
        text,
        "valid adverts: {}, passed on (VLAN-tagged or naming no VRID): {}",
        counters.get(Counter::Accepted),
        counters.get(Counter::PassedUnknown)
    );
    let drops: Vec<String> = counters
        .drops()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let _ = writeln!(text, "invalid adverts by reason: {}", drops.join(" "));
    text
}

#[cfg(test)]
mod tests {
    use agent_common::{PEER_FLAG_PSEUDO_HEADER_CHECKSUM, PeerKey, PeerState};

    use super::*;

    fn state(interval_cs: u16, last_seen_ns: u64, adverts: u64) -> PeerRecord {
        let state = PeerState {
            last_seen_ns,
            adverts,
            source: [192, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            interval_cs,
            priority: 150,
            version: 3,
            flags: PEER_FLAG_PSEUDO_HEADER_CHECKSUM,
            _pad: [0; 3],
        };
        PeerRecord::from_kernel(&PeerKey::new(3, 51, FAMILY_IPV4), &state)
    }

    #[test]
    fn a_router_goes_silent_after_three_intervals() {
        let key = (3, FAMILY_IPV4, 51);
        let alive = RouterRow::new("veth0", key, &state(100, 0, 1), 3_000_000_000, None);
        assert_eq!((alive.status, alive.last_seen_ms), ("alive", 3000));
        assert_eq!(alive.master, "192.0.2.7");
        assert_eq!(alive.checksum, "pseudo_header");
        let silent = RouterRow::new("veth0", key, &state(100, 0, 1), 3_010_000_000, None);
        assert_eq!(silent.status, "silent");
    }

    #[test]
    fn rates_need_two_samples() {
        let mut tracker = RateTracker::default();
        let key = (3, FAMILY_IPV4, 51);
        assert_eq!(tracker.rate(key, &state(1, 0, 10), 1_000_000_000), None);
        assert_eq!(
            tracker.rate(key, &state(1, 0, 110), 2_000_000_000),
            Some(100.0)
        );
    }

    #[test]
    fn table_lists_routers_and_every_drop_reason() {
        let key = (3, FAMILY_IPV4, 51);
        let row = RouterRow::new("veth0", key, &state(100, 0, 42), 500_000_000, Some(1.0));
        let table = render_table("veth0", &[row], &CounterSnapshot::default());
        assert!(table.contains("192.0.2.7"), "{table}");
        for (name, _) in CounterSnapshot::default().drops() {
            assert!(
                table.contains(&format!("{name}=0")),
                "{name} missing: {table}"
            );
        }
    }
}
