//! Adds and removes virtual routes, and remembers which ones it added: a
//! route the agent did not add is never removed, whoever asks.

use std::collections::HashMap;
use std::net::IpAddr;

use rtnetlink::Handle;
use tracing::{debug, info, warn};

use super::device::resolve;
use super::error::{KernelReply, NetlinkError, classify, from_errno};
use super::route::VirtualRoute;

/// What the kernel keys a route by (TOS is always 0 here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RouteKey {
    destination: IpAddr,
    prefix_len: u8,
    table: u32,
    metric: Option<u32>,
}

impl RouteKey {
    fn of(route: &VirtualRoute) -> Self {
        RouteKey {
            destination: route.destination,
            prefix_len: route.prefix_len,
            table: route.table_id(),
            metric: route.metric,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteAddOutcome {
    /// The kernel created the route; the agent now owns it.
    Added,
    /// Already there because the agent added it earlier; still owned.
    AlreadyOwned,
    /// A route with the same destination, table and metric was already there
    /// and was not added by the agent: left alone now and never removed later.
    ForeignPresent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteRemoveOutcome {
    Removed,
    /// Owned, but someone removed it first (or its interface is gone).
    AlreadyGone,
    /// Not added by the agent, so nothing was done.
    NotOwned,
}

/// What `release_all` achieved; failed routes stay registered.
#[derive(Debug, Default)]
pub struct RouteReleaseSummary {
    pub removed: usize,
    pub already_gone: usize,
    pub failures: Vec<NetlinkError>,
}

/// The single owner of the agent's virtual routes in one network namespace.
///
/// Not cancel-safe, like [`super::AddressManager`]: let each call finish.
pub struct RouteManager {
    handle: Handle,
    /// The spec we added and the interface index it was resolved to then.
    owned: HashMap<RouteKey, (VirtualRoute, Option<u32>)>,
}

impl RouteManager {
    pub fn new(handle: Handle) -> Self {
        RouteManager {
            handle,
            owned: HashMap::new(),
        }
    }

    /// Takes over a configured route a previous run of the agent left while
    /// master, when this run resumes as master (see
    /// [`super::AddressManager::claim`]).
    pub async fn claim(&mut self, route: &VirtualRoute) -> Result<(), NetlinkError> {
        let action = format!("claiming virtual route {route}");
        let ifindex = self.resolve_device(route, &action).await?;
        self.owned
            .insert(RouteKey::of(route), (route.clone(), ifindex));
        Ok(())
    }

    pub async fn add(&mut self, route: &VirtualRoute) -> Result<RouteAddOutcome, NetlinkError> {
        route.validate()?;
        let action = format!("adding virtual route {route}");
        let device = device_text(route);
        let ifindex = self.resolve_device(route, &action).await?;
        let message = route.add_message(ifindex)?;
        let key = RouteKey::of(route);
        match self.handle.route().add(message).execute().await {
            Ok(()) => {
                info!(route = %route, "added virtual route");
                self.owned.insert(key, (route.clone(), ifindex));
                Ok(RouteAddOutcome::Added)
            }
            Err(error) => match classify(error, &action, &device) {
                KernelReply::AlreadyExists if self.owned.contains_key(&key) => {
                    debug!(route = %route, "virtual route already present, added earlier by the agent");
                    Ok(RouteAddOutcome::AlreadyOwned)
                }
                KernelReply::AlreadyExists => {
                    warn!(route = %route, "a route to this destination (same table and metric) is already present and was not added by the agent; leaving it, and it will not be removed on release");
                    Ok(RouteAddOutcome::ForeignPresent)
                }
                KernelReply::NotFound(errno) => Err(from_errno(errno, &action, &device)),
                KernelReply::Failed(error) => Err(error),
            },
        }
    }

    /// Removes `route` if, and only if, the agent added it.
    pub async fn remove(
        &mut self,
        route: &VirtualRoute,
    ) -> Result<RouteRemoveOutcome, NetlinkError> {
        let key = RouteKey::of(route);
        let Some((owned, ifindex)) = self.owned.get(&key).cloned() else {
            debug!(route = %route, "not removing a route the agent did not add");
            return Ok(RouteRemoveOutcome::NotOwned);
        };
        if &owned != route {
            debug!(route = %route, owned = %owned, "not removing: the agent added a different route to this destination");
            return Ok(RouteRemoveOutcome::NotOwned);
        }
        let outcome = delete(&self.handle, &owned, ifindex).await?;
        self.owned.remove(&key);
        Ok(outcome)
    }

    /// Removes every route the agent added (for shutdown), carrying on past
    /// failures.
    pub async fn release_all(&mut self) -> RouteReleaseSummary {
        let mut summary = RouteReleaseSummary::default();
        let owned: Vec<_> = self.owned.drain().collect();
        for (key, (route, ifindex)) in owned {
            match delete(&self.handle, &route, ifindex).await {
                Ok(RouteRemoveOutcome::Removed) => summary.removed += 1,
                Ok(_) => summary.already_gone += 1,
                Err(error) => {
                    warn!(route = %route, %error, "could not release virtual route");
                    summary.failures.push(error);
                    self.owned.insert(key, (route, ifindex));
                }
            }
        }
        summary
    }

    /// Whether the agent added exactly `route`. Like [`RouteManager::owned`],
    /// only the tests inspect the registry.
    #[cfg(test)]
    pub fn owns(&self, route: &VirtualRoute) -> bool {
        self.owned
            .get(&RouteKey::of(route))
            .is_some_and(|(owned, _)| owned == route)
    }

    #[cfg(test)]
    pub fn owned(&self) -> impl Iterator<Item = &VirtualRoute> {
        self.owned.values().map(|(route, _)| route)
    }

    async fn resolve_device(
        &self,
        route: &VirtualRoute,
        action: &str,
    ) -> Result<Option<u32>, NetlinkError> {
        let Some(device) = &route.device else {
            return Ok(None);
        };
        match resolve(&self.handle, device).await {
            Ok(ifindex) => Ok(Some(ifindex)),
            Err(NetlinkError::NoSuchInterface { device, .. }) => {
                Err(NetlinkError::NoSuchInterface {
                    action: action.to_owned(),
                    device,
                })
            }
            Err(error) => Err(error),
        }
    }
}

fn device_text(route: &VirtualRoute) -> String {
    route
        .device
        .as_ref()
        .map_or_else(|| "(none)".to_owned(), ToString::to_string)
}

async fn delete(
    handle: &Handle,
    route: &VirtualRoute,
    ifindex: Option<u32>,
) -> Result<RouteRemoveOutcome, NetlinkError> {
    let action = format!("removing virtual route {route}");
    let message = route.delete_message(ifindex)?;
    match handle.route().del(message).execute().await {
        Ok(()) => {
            info!(route = %route, "removed virtual route");
            Ok(RouteRemoveOutcome::Removed)
        }
        Err(error) => match classify(error, &action, &device_text(route)) {
            KernelReply::NotFound(_)
            | KernelReply::Failed(NetlinkError::NoSuchInterface { .. }) => {
                info!(route = %route, "virtual route was already gone");
                Ok(RouteRemoveOutcome::AlreadyGone)
            }
            KernelReply::AlreadyExists => {
                Err(from_errno(libc::EEXIST, &action, &device_text(route)))
            }
            KernelReply::Failed(error) => Err(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::device::Device;
    use crate::netlink::route::RouteKind;
    use crate::test_netns::{TestNetns, ip_in};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn routes(namespace: &str, family: &str) -> String {
        ip_in(namespace, &[family, "route", "show", "table", "all"])
    }

    #[test]
    fn routes_are_added_removed_and_released() {
        let namespace = TestNetns::with_veth("vrrpnl-rt");
        namespace.ip(&["addr", "add", "198.51.100.1/24", "dev", "v0"]);
        namespace.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "v0"]);
        let name = namespace.name().to_owned();
        namespace.run(|| async move {
            let handle = crate::netlink::connect().unwrap();
            let mut manager = RouteManager::new(handle);
            let gateway = VirtualRoute {
                via: Some(ip("198.51.100.254")),
                device: Some(Device::from("v0")),
                metric: Some(10),
                ..VirtualRoute::new(ip("203.0.113.0"), 24)
            };
            let on_link = VirtualRoute {
                device: Some(Device::from("v0")),
                src: Some(ip("198.51.100.1")),
                scope: Some(crate::netlink::Scope::Link),
                ..VirtualRoute::new(ip("192.0.2.128"), 25)
            };
            let blackhole = VirtualRoute {
                kind: RouteKind::Blackhole,
                table: Some(100),
                ..VirtualRoute::new(ip("203.0.113.128"), 25)
            };
            let v6 = VirtualRoute {
                via: Some(ip("2001:db8:1::fe")),
                device: Some(Device::from("v0")),
                ..VirtualRoute::new(ip("2001:db8:5::"), 48)
            };
            for route in [&gateway, &on_link, &blackhole, &v6] {
                assert_eq!(
                    manager.add(route).await.unwrap(),
                    RouteAddOutcome::Added,
                    "{route}"
                );
                assert_eq!(
                    manager.add(route).await.unwrap(),
                    RouteAddOutcome::AlreadyOwned,
                    "{route}"
                );
            }
            let v4 = routes(&name, "-4");
            assert!(
                v4.contains("203.0.113.0/24 via 198.51.100.254 dev v0 proto keepalived metric 10"),
                "{v4}"
            );
            assert!(
                v4.contains("192.0.2.128/25 dev v0 proto keepalived scope link src 198.51.100.1"),
                "{v4}"
            );
            assert!(
                v4.contains("blackhole 203.0.113.128/25 table 100 proto keepalived"),
                "{v4}"
            );
            let v6_routes = routes(&name, "-6");
            assert!(
                v6_routes.contains("2001:db8:5::/48 via 2001:db8:1::fe dev v0 proto keepalived"),
                "{v6_routes}"
            );

            assert_eq!(
                manager.remove(&gateway).await.unwrap(),
                RouteRemoveOutcome::Removed
            );
            assert!(!routes(&name, "-4").contains("203.0.113.0/24"));
            assert_eq!(
                manager.remove(&gateway).await.unwrap(),
                RouteRemoveOutcome::NotOwned
            );

            let summary = manager.release_all().await;
            assert_eq!((summary.removed, summary.already_gone), (3, 0));
            assert!(summary.failures.is_empty(), "{:?}", summary.failures);
            assert!(!routes(&name, "-4").contains("proto keepalived"));
            assert!(!routes(&name, "-6").contains("proto keepalived"));
        });
    }

    #[test]
    fn an_operators_route_is_never_removed() {
        let namespace = TestNetns::with_veth("vrrpnl-rop");
        namespace.ip(&["addr", "add", "198.51.100.1/24", "dev", "v0"]);
        namespace.ip(&["route", "add", "203.0.113.64/26", "via", "198.51.100.254"]);
        let name = namespace.name().to_owned();
        namespace.run(|| async move {
            let handle = crate::netlink::connect().unwrap();
            let mut manager = RouteManager::new(handle);
            let same_destination = VirtualRoute {
                via: Some(ip("198.51.100.253")),
                device: Some(Device::from("v0")),
                ..VirtualRoute::new(ip("203.0.113.64"), 26)
            };
            assert_eq!(
                manager.add(&same_destination).await.unwrap(),
                RouteAddOutcome::ForeignPresent
            );
            assert!(!manager.owns(&same_destination));
            assert_eq!(
                manager.remove(&same_destination).await.unwrap(),
                RouteRemoveOutcome::NotOwned
            );
            let summary = manager.release_all().await;
            assert_eq!((summary.removed, summary.already_gone), (0, 0));
            let table = routes(&name, "-4");
            assert!(
                table.contains("203.0.113.64/26 via 198.51.100.254 dev v0"),
                "{table}"
            );

            // Ours, then replaced by the operator's own route: theirs stays.
            let ours = VirtualRoute {
                via: Some(ip("198.51.100.254")),
                device: Some(Device::from("v0")),
                ..VirtualRoute::new(ip("203.0.113.0"), 26)
            };
            assert_eq!(manager.add(&ours).await.unwrap(), RouteAddOutcome::Added);
            ip_in(
                &name,
                &[
                    "route",
                    "replace",
                    "203.0.113.0/26",
                    "via",
                    "198.51.100.254",
                    "proto",
                    "static",
                ],
            );
            assert_eq!(
                manager.remove(&ours).await.unwrap(),
                RouteRemoveOutcome::AlreadyGone
            );
            let table = routes(&name, "-4");
            assert!(
                table.contains("203.0.113.0/26 via 198.51.100.254 dev v0 proto static"),
                "{table}"
            );
        });
    }

    #[test]
    fn route_errors_name_the_route_and_the_cause() {
        let namespace = TestNetns::with_veth("vrrpnl-rerr");
        namespace.run(|| async move {
            let handle = crate::netlink::connect().unwrap();
            let mut manager = RouteManager::new(handle);
            let missing_device = VirtualRoute {
                device: Some(Device::from("nosuch0")),
                ..VirtualRoute::new(ip("203.0.113.0"), 24)
            };
            let error = manager.add(&missing_device).await.unwrap_err();
            assert!(matches!(&error, NetlinkError::NoSuchInterface { device, .. } if device == "nosuch0"), "{error:?}");
            // No address on v0, so the gateway is not on any connected subnet.
            let unreachable_gateway = VirtualRoute {
                via: Some(ip("198.51.100.254")),
                device: Some(Device::from("v0")),
                ..VirtualRoute::new(ip("203.0.113.0"), 24)
            };
            let error = manager.add(&unreachable_gateway).await.unwrap_err().to_string();
            assert!(error.contains("adding virtual route 203.0.113.0/24 via 198.51.100.254 dev v0"), "{error}");
            assert_eq!(manager.owned().count(), 0);
        });
    }
}
