//! Virtual addresses and routes, applied in order by one task so the task
//! that owns the elections never waits on netlink.

use std::net::{IpAddr, Ipv4Addr};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::plan::InstancePlan;
use crate::{
    config::model::{self, Broadcast},
    netlink::{self, AddressManager, Device, RouteKind, RouteManager},
};

/// The addresses and routes an instance owns while master.
#[derive(Debug)]
pub struct VirtualSet {
    pub instance: String,
    pub addresses: Vec<netlink::VirtualAddress>,
    pub routes: Vec<netlink::VirtualRoute>,
}

impl VirtualSet {
    /// `addresses` and `routes` of `plan` (all of them, or what a reload
    /// changed), as netlink wants them.
    pub fn of(
        plan: &InstancePlan,
        addresses: &[model::VirtualAddress],
        routes: &[model::VirtualRoute],
    ) -> Self {
        Self {
            instance: plan.name.clone(),
            addresses: addresses
                .iter()
                .map(|vip| address(vip, &plan.interface, plan.ifindex))
                .collect(),
            routes: routes
                .iter()
                .map(|virtual_route| route(virtual_route, &plan.interface, plan.ifindex))
                .collect(),
        }
    }
}

/// What the election task asks of the network side.
#[derive(Debug)]
pub enum NetCommand {
    /// Adds the set, then answers on `added` (whatever the outcome), so
    /// that announcements drawing clients to the addresses follow them.
    Add {
        set: VirtualSet,
        added: oneshot::Sender<()>,
    },
    Remove(VirtualSet),
    /// At startup: clear configured addresses a previous run left behind.
    RemoveStale(Vec<netlink::VirtualAddress>),
    /// At startup, for an instance that resumes as master: what a previous
    /// run left is the agent's again.
    Claim(VirtualSet),
    /// Remove everything the agent added, then answer.
    ReleaseAll(oneshot::Sender<()>),
}

/// The name of the network task's thread.
pub const THREAD_NAME: &str = "vrrp-net";

/// The network task on its own thread (see [`spawn`]).
pub struct NetTask {
    finished: oneshot::Receiver<()>,
}

impl NetTask {
    /// Waits up to `limit` for the task to end (once every sender of its
    /// commands is gone and the last queued request is done).
    pub async fn finish(self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, self.finished).await;
    }
}

/// Starts [`run`] on a thread of its own, with its own runtime and netlink
/// socket. On the election task's runtime an address add could start only
/// once the turn that asked for it had ended (its adverts sent, its state
/// changes logged), 0.1–0.2 ms after the advert; here the kernel adds the
/// address while that turn goes on, so the announcements that wait for it
/// leave right behind the advert.
pub fn spawn(
    commands: mpsc::UnboundedReceiver<NetCommand>,
) -> Result<NetTask, netlink::NetlinkError> {
    let socket_error = |source| netlink::NetlinkError::Socket { source };
    let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
    let (finished_tx, finished) = oneshot::channel();
    // Takeovers wait for this thread: under CPU load it must run as soon
    // as the election thread does.
    let realtime = crate::scheduling::current_thread_realtime_priority();
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            if let Some(priority) = realtime
                && let Err(error) = crate::scheduling::make_current_thread_realtime(priority)
            {
                warn!(%error, "the network thread could not switch to real-time scheduling");
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = started_tx.send(Err(socket_error(error)));
                    return;
                }
            };
            runtime.block_on(async move {
                match netlink::connect() {
                    Ok(handle) => {
                        let _ = started_tx.send(Ok(()));
                        run(handle, commands).await;
                    }
                    Err(error) => {
                        let _ = started_tx.send(Err(error));
                    }
                }
            });
            let _ = finished_tx.send(());
        })
        .map_err(socket_error)?;
    match started_rx.recv() {
        Ok(Ok(())) => Ok(NetTask { finished }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(socket_error(std::io::Error::other(
            "the network thread ended before opening its netlink socket",
        ))),
    }
}

/// Runs until the command channel closes.
pub async fn run(handle: netlink::Handle, mut commands: mpsc::UnboundedReceiver<NetCommand>) {
    let mut addresses = AddressManager::new(handle.clone());
    let mut routes = RouteManager::new(handle);
    while let Some(command) = commands.recv().await {
        match command {
            NetCommand::Add {
                set:
                    VirtualSet {
                        instance,
                        addresses: vips,
                        routes: virtual_routes,
                    },
                added,
            } => {
                for vip in &vips {
                    match addresses.add(vip).await {
                        Ok(outcome) => {
                            debug!(%instance, address = %vip.address, ?outcome, "virtual address added")
                        }
                        Err(error) => warn!(%instance, %error, "adding a virtual address failed"),
                    }
                }
                for route in &virtual_routes {
                    if let Err(error) = routes.add(route).await {
                        warn!(%instance, %error, "adding a virtual route failed");
                    }
                }
                let _ = added.send(());
            }
            NetCommand::Remove(VirtualSet {
                instance,
                addresses: vips,
                routes: virtual_routes,
            }) => {
                for route in &virtual_routes {
                    if let Err(error) = routes.remove(route).await {
                        warn!(%instance, %error, "removing a virtual route failed");
                    }
                }
                for vip in &vips {
                    match addresses.remove(vip).await {
                        Ok(outcome) => {
                            debug!(%instance, address = %vip.address, ?outcome, "virtual address removed")
                        }
                        Err(error) => warn!(%instance, %error, "removing a virtual address failed"),
                    }
                }
            }
            NetCommand::RemoveStale(vips) => {
                for vip in &vips {
                    if let Err(error) = addresses.remove_stale(vip).await {
                        warn!(address = %vip.address, %error, "removing a stale virtual address failed");
                    }
                }
            }
            NetCommand::Claim(VirtualSet {
                instance,
                addresses: vips,
                routes: virtual_routes,
            }) => {
                for vip in &vips {
                    if let Err(error) = addresses.claim(vip).await {
                        warn!(%instance, %error, "claiming a virtual address failed");
                    }
                }
                for route in &virtual_routes {
                    if let Err(error) = routes.claim(route).await {
                        warn!(%instance, %error, "claiming a virtual route failed");
                    }
                }
            }
            NetCommand::ReleaseAll(done) => {
                let route_summary = routes.release_all().await;
                let summary = addresses.release_all().await;
                info!(
                    addresses = summary.removed,
                    routes = route_summary.removed,
                    failures = summary.failures.len() + route_summary.failures.len(),
                    "released everything the agent added"
                );
                let _ = done.send(());
            }
        }
    }
}

/// The instance's own interface goes by index: a name would cost an
/// RTM_GETLINK round trip at the moment of takeover, measured at 15 ms.
fn device(dev: Option<&str>, interface: &str, ifindex: u32) -> Device {
    match dev {
        Some(name) if name != interface => Device::Name(name.to_owned()),
        _ => Device::Index(ifindex),
    }
}

/// A `virtual_ipaddress` entry as netlink wants it; `dev` defaults to the
/// instance's interface.
pub fn address(
    vip: &model::VirtualAddress,
    interface: &str,
    ifindex: u32,
) -> netlink::VirtualAddress {
    let mut address =
        netlink::VirtualAddress::new(vip.address, device(vip.dev.as_deref(), interface, ifindex));
    address.prefix_len = vip.prefix_len;
    address.broadcast = match (vip.brd, vip.address) {
        (Some(Broadcast::Address(IpAddr::V4(brd))), _) => Some(brd),
        (Some(Broadcast::HostBitsSet), IpAddr::V4(v4)) => Some(host_bits(v4, vip.prefix_len, true)),
        (Some(Broadcast::HostBitsCleared), IpAddr::V4(v4)) => {
            Some(host_bits(v4, vip.prefix_len, false))
        }
        _ => None,
    };
    address.scope = vip.scope;
    address.label = vip.label.clone();
    address
}

/// A `virtual_routes` entry as netlink wants it.
pub fn route(route: &model::VirtualRoute, interface: &str, ifindex: u32) -> netlink::VirtualRoute {
    let mut converted = netlink::VirtualRoute::new(route.to, route.prefix_len);
    converted.kind = route.route_type;
    converted.via = route.via;
    converted.src = route.src;
    converted.device = match (&route.dev, route.route_type) {
        (Some(dev), _) => Some(device(Some(dev), interface, ifindex)),
        // keepalived puts gateway-less unicast routes on the instance's link.
        (None, RouteKind::Unicast) if route.via.is_none() => Some(Device::Index(ifindex)),
        _ => None,
    };
    converted.scope = route.scope;
    converted.metric = route.metric;
    converted.table = route.table;
    converted
}

fn host_bits(address: Ipv4Addr, prefix_len: u8, set: bool) -> Ipv4Addr {
    let mask = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
    let bits = u32::from(address);
    Ipv4Addr::from(if set { bits | mask } else { bits & !mask })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_netns::{TestNetns, ip_in};

    /// A takeover waits for the network thread, so it runs under SCHED_RR
    /// when the thread that starts it does (the daemon's main thread).
    #[test]
    fn the_network_thread_takes_the_realtime_scheduling_of_its_starter() {
        let namespace = TestNetns::new("vrrpnl-rt");
        namespace.run(|| async move {
            crate::scheduling::make_current_thread_realtime(crate::scheduling::DEFAULT_PRIORITY)
                .expect("root may use SCHED_RR");
            let (commands, receiver) = mpsc::unbounded_channel();
            let task = spawn(receiver).expect("network thread starts");
            let policies: Vec<i32> = std::fs::read_dir("/proc/thread-self/..")
                .unwrap()
                .flatten()
                .filter(|task| {
                    std::fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|comm| comm.trim() == THREAD_NAME)
                })
                .filter_map(|task| task.file_name().to_str()?.parse::<i32>().ok())
                // SAFETY: only reads the policy of a thread of this process.
                .map(|tid| unsafe { libc::sched_getscheduler(tid) } & !libc::SCHED_RESET_ON_FORK)
                .collect();
            assert!(policies.contains(&libc::SCHED_RR), "{policies:?}");
            drop(commands);
            task.finish(std::time::Duration::from_secs(5)).await;
        });
    }

    /// The announcement that follows an add waits for this answer, so it
    /// must come only once the kernel holds the addresses and routes.
    #[test]
    fn an_add_is_answered_once_its_addresses_and_routes_are_in_place() {
        let namespace = TestNetns::with_veth("vrrpnl-ops");
        namespace.ip(&["addr", "add", "198.51.100.1/24", "dev", "v0"]);
        let name = namespace.name().to_owned();
        namespace.run(|| async move {
            let handle = netlink::connect().unwrap();
            let (commands, receiver) = mpsc::unbounded_channel();
            let task = tokio::spawn(run(handle, receiver));
            let address: IpAddr = "203.0.113.10".parse().unwrap();
            let mut vip = netlink::VirtualAddress::new(address, Device::from("v0"));
            vip.prefix_len = 24;
            let mut route = netlink::VirtualRoute::new("192.0.2.0".parse().unwrap(), 24);
            route.via = Some("198.51.100.254".parse().unwrap());
            route.device = Some(Device::from("v0"));
            let (added, answer) = oneshot::channel();
            commands
                .send(NetCommand::Add {
                    set: VirtualSet {
                        instance: "VI_1".into(),
                        addresses: vec![vip],
                        routes: vec![route],
                    },
                    added,
                })
                .unwrap();
            answer.await.expect("the network task answers an add");
            let addresses = ip_in(&name, &["-4", "addr", "show", "dev", "v0"]);
            assert!(addresses.contains("203.0.113.10/24"), "{addresses}");
            let routes = ip_in(&name, &["-4", "route", "show"]);
            assert!(
                routes.contains("192.0.2.0/24 via 198.51.100.254"),
                "{routes}"
            );
            drop(commands);
            task.await.unwrap();
        });
    }

    #[test]
    fn broadcast_shorthands_follow_the_prefix() {
        let address = Ipv4Addr::new(203, 0, 113, 10);
        assert_eq!(
            host_bits(address, 24, true),
            Ipv4Addr::new(203, 0, 113, 255)
        );
        assert_eq!(host_bits(address, 24, false), Ipv4Addr::new(203, 0, 113, 0));
        assert_eq!(host_bits(address, 32, true), address);
        assert_eq!(host_bits(address, 0, true), Ipv4Addr::BROADCAST);
    }
}
