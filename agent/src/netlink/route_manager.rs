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
                // ESRCH/ENOENT on add: the gateway or table lookup failed.
                KernelReply::NotFound => Err(NetlinkError::Kernel {
                    action,
                    errno: libc::ESRCH,
                    reason: "the gateway is not reachable through any route or device given"
                        .to_owned(),
                }),
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

    pub fn owns(&self, route: &VirtualRoute) -> bool {
        self.owned
            .get(&RouteKey::of(route))
            .is_some_and(|(owned, _)| owned == route)
    }

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
            KernelReply::NotFound | KernelReply::Failed(NetlinkError::NoSuchInterface { .. }) => {
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
