//! Gratuitous ARP / unsolicited NA bursts after becoming master, shaped by
//! keepalived's `garp_master_delay`, `garp_master_repeat` and
//! `garp_master_refresh` (+ `_refresh_repeat`), and spaced by
//! `vrrp_garp_interval` (IPv4) or `vrrp_gna_interval` (IPv6); and the
//! bursts a master sends after a lower-priority advert
//! (`garp_lower_prio_repeat`, `garp_lower_prio_delay`).

use std::{collections::HashMap, hash::Hash, net::IpAddr, sync::Arc, time::Duration};

use tokio::{sync::oneshot, task::JoinHandle};
use tracing::{debug, warn};

use crate::{
    config::model::GarpSettings,
    frame_socket::FrameSocket,
    vrrp::wire::{arp::GratuitousArp, ethernet::MacAddr, ndisc::UnsolicitedNa},
};

use super::plan::InstancePlan;

/// One announcement frame per address in `addresses`, from the MAC the
/// instance answers with (the virtual MAC with `use_vmac`, as keepalived's
/// macvlan sends them).
pub fn frames(plan: &InstancePlan, addresses: &[IpAddr]) -> Vec<Vec<u8>> {
    let mac = MacAddr(plan.answering_mac());
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
    /// The instance's schedule, spaced by its family's interval (see
    /// [`InstancePlan::announce_spacing`]).
    pub fn for_plan(plan: &InstancePlan) -> Self {
        Self::from_settings(&plan.garp, plan.announce_spacing)
    }

    /// keepalived's bursts after a lower-priority advert while master:
    /// `garp_lower_prio_repeat` rounds now and again after
    /// `garp_lower_prio_delay` (0: no second burst), no refresh.
    pub fn lower_priority(plan: &InstancePlan) -> Self {
        Self {
            repeat: plan.garp.lower_prio_repeat,
            second_burst_after: plan.garp.lower_prio_delay,
            refresh: None,
            spacing: plan.announce_spacing,
        }
    }

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

/// How long the first burst waits for its addresses at most: the kernel
/// answers an address add in well under a millisecond, unless another
/// process holds its rtnl lock for long.
pub const ADDED_WAIT_LIMIT: Duration = Duration::from_secs(1);

/// What became of the wait for the addresses an announcement is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Nothing to wait for (the addresses were already there).
    Immediate,
    /// The network task added them (or reported its failure).
    Added,
    /// The network task went away without answering.
    NoAnswer,
    /// [`ADDED_WAIT_LIMIT`] passed first.
    TimedOut,
}

/// Waits until the addresses are on the interface. A gratuitous ARP sent
/// before that draws clients to a node that drops their packets until the
/// add completes; keepalived adds first, then announces, and so do we.
pub async fn wait_for_addresses(
    added: Option<oneshot::Receiver<()>>,
    limit: Duration,
) -> Readiness {
    let Some(added) = added else {
        return Readiness::Immediate;
    };
    match tokio::time::timeout(limit, added).await {
        Ok(Ok(())) => Readiness::Added,
        Ok(Err(_)) => Readiness::NoAnswer,
        Err(_) => Readiness::TimedOut,
    }
}

/// Sends the bursts until aborted (the instance left MASTER), the first
/// once `added` answers (see [`wait_for_addresses`]). The egress guard
/// already stops frames from addresses we no longer own, so a late abort
/// cannot announce a stolen address.
pub fn spawn(
    socket: Arc<FrameSocket>,
    frames: Vec<Vec<u8>>,
    schedule: Schedule,
    added: Option<oneshot::Receiver<()>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if frames.is_empty() {
            return;
        }
        let readiness = wait_for_addresses(added, ADDED_WAIT_LIMIT).await;
        match readiness {
            Readiness::TimedOut => warn!(
                limit_ms = ADDED_WAIT_LIMIT.as_millis() as u64,
                "virtual addresses not added in time; announcing them anyway"
            ),
            Readiness::NoAnswer => warn!(
                "the network task did not answer for the virtual addresses; announcing them anyway"
            ),
            Readiness::Immediate | Readiness::Added => {}
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

/// The lower-priority bursts in flight, one per instance. keepalived
/// queues a second burst per lower-priority advert; here a new advert
/// replaces the waiting one, so the last burst still comes
/// `garp_lower_prio_delay` after the last such advert, and a stream of them
/// does not pile up timers.
pub struct LowerPriorityBursts<K> {
    running: HashMap<K, JoinHandle<()>>,
}

impl<K> Default for LowerPriorityBursts<K> {
    fn default() -> Self {
        Self {
            running: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash> LowerPriorityBursts<K> {
    pub fn start(
        &mut self,
        key: K,
        socket: Arc<FrameSocket>,
        frames: Vec<Vec<u8>>,
        plan: &InstancePlan,
    ) {
        let handle = spawn(socket, frames, Schedule::lower_priority(plan), None);
        if let Some(previous) = self.running.insert(key, handle) {
            previous.abort();
        }
    }

    /// The instance left MASTER: what is still to be sent is not ours to send.
    pub fn stop(&mut self, key: &K) {
        if let Some(previous) = self.running.remove(key) {
            previous.abort();
        }
    }

    pub fn stop_all(&mut self) {
        for (_, handle) in self.running.drain() {
            handle.abort();
        }
    }
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::daemon::plan::{InterfaceInfo, plan};

    fn eth1(name: &str) -> Option<InterfaceInfo> {
        (name == "eth1").then(|| InterfaceInfo {
            ifindex: 7,
            mac: [2, 0, 0, 0, 0, 1],
            ipv4: vec![Ipv4Addr::new(192, 0, 2, 10)],
            ipv6_link_local: Some("fe80::1".parse().unwrap()),
            up: true,
        })
    }

    /// One IPv4 and one IPv6 instance under the given global_defs lines.
    fn schedules(global: &str) -> (Schedule, Schedule) {
        let text = format!(
            "global_defs {{\n{global}\n}}\n\
             vrrp_instance v4 {{\n interface eth1\n virtual_router_id 1\n virtual_ipaddress {{ 192.0.2.100 }}\n}}\n\
             vrrp_instance v6 {{\n interface eth1\n virtual_router_id 2\n virtual_ipaddress {{ 2001:db8::100 }}\n}}\n"
        );
        let config = crate::config::parse_str(&text, "t.conf")
            .expect("parses")
            .config;
        let plan = plan(&config, &eth1, "h").expect("plans");
        let by_family = |v4: bool| {
            let instance = plan
                .instances()
                .find(|i| i.source.is_ipv4() == v4)
                .expect("instance of the family");
            Schedule::for_plan(instance)
        };
        (by_family(true), by_family(false))
    }

    #[test]
    fn gna_interval_spaces_ipv6_and_garp_interval_spaces_ipv4() {
        let (v4, v6) = schedules(" vrrp_garp_interval 0.002\n vrrp_gna_interval 0.05");
        assert_eq!(v4.spacing, Duration::from_millis(2));
        assert_eq!(v6.spacing, Duration::from_millis(50));
        // Everything else comes from the same GARP settings.
        assert_eq!(v4.repeat, v6.repeat);
        assert_eq!(v4.second_burst_after, v6.second_burst_after);
    }

    #[test]
    fn one_interval_does_not_leak_into_the_other_family() {
        let (v4, v6) = schedules(" vrrp_gna_interval 0.25");
        assert_eq!(v4.spacing, Duration::ZERO);
        assert_eq!(v6.spacing, Duration::from_millis(250));
        let (v4, v6) = schedules(" vrrp_garp_interval 0.25");
        assert_eq!(v4.spacing, Duration::from_millis(250));
        assert_eq!(v6.spacing, Duration::ZERO);
    }

    #[test]
    fn the_schedule_follows_the_garp_settings() {
        let (v4, _) = schedules(
            " vrrp_garp_master_delay 3\n vrrp_garp_master_repeat 4\n vrrp_garp_master_refresh 60\n vrrp_garp_master_refresh_repeat 2",
        );
        assert_eq!(
            v4,
            Schedule {
                repeat: 4,
                second_burst_after: Duration::from_secs(3),
                refresh: Some((Duration::from_secs(60), 2)),
                spacing: Duration::ZERO,
            }
        );
    }

    #[tokio::test]
    async fn the_first_burst_waits_for_the_addresses() {
        assert_eq!(
            wait_for_addresses(None, Duration::from_secs(5)).await,
            Readiness::Immediate
        );

        let (added, answer) = oneshot::channel();
        let waiting = tokio::spawn(wait_for_addresses(Some(answer), Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "announced before the add answered");
        added.send(()).unwrap();
        assert_eq!(waiting.await.unwrap(), Readiness::Added);

        let (added, answer) = oneshot::channel::<()>();
        drop(added);
        assert_eq!(
            wait_for_addresses(Some(answer), Duration::from_secs(5)).await,
            Readiness::NoAnswer
        );

        let (_added, answer) = oneshot::channel::<()>();
        assert_eq!(
            wait_for_addresses(Some(answer), Duration::from_millis(10)).await,
            Readiness::TimedOut
        );
    }
}
