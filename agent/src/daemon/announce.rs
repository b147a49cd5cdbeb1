//! Gratuitous ARP / unsolicited NA bursts after becoming master, shaped by
//! keepalived's `garp_master_delay`, `garp_master_repeat` and
//! `garp_master_refresh` (+ `_refresh_repeat`) and `vrrp_garp_interval`.

use std::{net::IpAddr, sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::{
    config::model::{GarpSettings, GlobalDefs},
    frame_socket::FrameSocket,
    vrrp::wire::{AddressFamily, arp::GratuitousArp, ethernet::MacAddr, ndisc::UnsolicitedNa},
};

use super::plan::InstancePlan;

/// The pause between announcements on one interface: keepalived's
/// `vrrp_garp_interval` for gratuitous ARP, `vrrp_gna_interval` for
/// unsolicited neighbour adverts.
pub fn spacing(global: &GlobalDefs, family: AddressFamily) -> Duration {
    match family {
        AddressFamily::Ipv4 => global.vrrp_garp_interval,
        AddressFamily::Ipv6 => global.vrrp_gna_interval,
    }
}

/// One announcement frame per address in `addresses`.
pub fn frames(plan: &InstancePlan, addresses: &[IpAddr]) -> Vec<Vec<u8>> {
    let mac = MacAddr(plan.mac);
    addresses
        .iter()
        .map(|address| match *address {
            IpAddr::V4(address) => GratuitousArp {
                sender_mac: mac,
                address,
            }
            .to_frame(),
            IpAddr::V6(target) => UnsolicitedNa {
                source_mac: mac,
                target,
                router: false,
            }
            .to_frame(),
        })
        .collect()
}

/// When each burst goes out, relative to becoming master.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub repeat: u32,
    pub second_burst_after: Duration,
    pub refresh: Option<(Duration, u32)>,
    pub spacing: Duration,
}

impl Schedule {
    pub fn from_settings(settings: &GarpSettings, spacing: Duration) -> Self {
        Self {
            repeat: settings.master_repeat.max(1),
            second_burst_after: settings.master_delay,
            refresh: (!settings.master_refresh.is_zero()).then_some((
                settings.master_refresh,
                settings.master_refresh_repeat.max(1),
            )),
            spacing,
        }
    }
}

/// Sends the bursts until aborted (the instance left MASTER). The egress
/// guard already stops frames from addresses we no longer own, so a late
/// abort cannot announce a stolen address.
pub fn spawn(socket: Arc<FrameSocket>, frames: Vec<Vec<u8>>, schedule: Schedule) -> JoinHandle<()> {
    tokio::spawn(async move {
        if frames.is_empty() {
            return;
        }
        burst(&socket, &frames, schedule.repeat, schedule.spacing).await;
        if !schedule.second_burst_after.is_zero() {
            tokio::time::sleep(schedule.second_burst_after).await;
            burst(&socket, &frames, schedule.repeat, schedule.spacing).await;
        }
        if let Some((every, repeat)) = schedule.refresh {
            loop {
                tokio::time::sleep(every).await;
                burst(&socket, &frames, repeat, schedule.spacing).await;
            }
        }
    })
}

/// A burst of hundreds of frames can fill the device queue (ENOBUFS); a
/// frame that did not fit is retried shortly rather than lost.
async fn send_with_retry(socket: &FrameSocket, frame: &[u8]) {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        match socket.send(frame) {
            Ok(()) => return,
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(u64::from(attempt))).await;
            }
            Err(error) => {
                warn!(%error, attempt, "sending a gratuitous ARP / NA failed");
                return;
            }
        }
    }
}

async fn burst(socket: &FrameSocket, frames: &[Vec<u8>], repeat: u32, spacing: Duration) {
    for round in 0..repeat {
        for frame in frames {
            send_with_retry(socket, frame).await;
            if !spacing.is_zero() {
                tokio::time::sleep(spacing).await;
            }
        }
        debug!(
            round,
            frames = frames.len(),
            "gratuitous announcements sent"
        );
    }
}
