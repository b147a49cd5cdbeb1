//! Adds and removes virtual addresses, and remembers which ones it added:
//! an address the agent did not add is never removed, whoever asks.

use std::collections::HashMap;
use std::net::IpAddr;

use rtnetlink::Handle;
use tracing::{debug, info, warn};

use super::address::VirtualAddress;
use super::device::{Device, resolve};
use super::error::{KernelReply, NetlinkError, classify};

/// What the kernel keys an address by (for IPv6 the prefix is not part of the
/// kernel's key, but a prefix we did not ask for is not an address we added).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AddressKey {
    ifindex: u32,
    address: IpAddr,
    prefix_len: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// The kernel created the address; the agent now owns it.
    Added,
    /// Already there because the agent added it earlier; still owned.
    AlreadyOwned,
    /// Already there and not added by the agent (an operator's, or another
    /// daemon's): left alone now and never removed later.
    ForeignPresent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveOutcome {
    Removed,
    /// Owned, but someone removed it first (or its interface is gone).
    AlreadyGone,
    /// Not added by the agent, so nothing was done.
    NotOwned,
}

/// What `release_all` achieved; failed addresses stay registered so a later
/// attempt can retry them.
#[derive(Debug, Default)]
pub struct ReleaseSummary {
    pub removed: usize,
    pub already_gone: usize,
    pub failures: Vec<NetlinkError>,
}

/// The single owner of the agent's virtual addresses in one network namespace.
///
/// Not cancel-safe: dropping an `add` future after the kernel answered but
/// before it returns can leave an added address unregistered, so let calls
/// finish (the daemon's netlink task owns the manager and awaits each call).
pub struct AddressManager {
    handle: Handle,
    owned: HashMap<AddressKey, VirtualAddress>,
}

impl AddressManager {
    pub fn new(handle: Handle) -> Self {
        AddressManager {
            handle,
            owned: HashMap::new(),
        }
    }

    /// Adds `vip`. `EEXIST` is not an error, but only makes the address ours
    /// if we had added it before.
    pub async fn add(&mut self, vip: &VirtualAddress) -> Result<AddOutcome, NetlinkError> {
        vip.validate()?;
        let action = format!("adding virtual address {vip}");
        let ifindex = resolve_for(&self.handle, &vip.device, &action).await?;
        let key = key_of(vip, ifindex);
        // Our own message replaces rtnetlink's, which would add a broadcast
        // address derived from the prefix (keepalived adds none).
        let mut request = self
            .handle
            .address()
            .add(ifindex, vip.address, vip.prefix_len);
        *request.message_mut() = vip.add_message(ifindex);
        match request.execute().await {
            Ok(()) => {
                info!(address = %vip.address, prefix_len = vip.prefix_len, device = %vip.device, ifindex, "added virtual address");
                self.owned.insert(key, vip.clone());
                Ok(AddOutcome::Added)
            }
            Err(error) => match classify(error, &action, &vip.device.to_string()) {
                KernelReply::AlreadyExists if self.owned.contains_key(&key) => {
                    debug!(address = %vip.address, device = %vip.device, "virtual address already present, added earlier by the agent");
                    Ok(AddOutcome::AlreadyOwned)
                }
                KernelReply::AlreadyExists => {
                    warn!(address = %vip.address, prefix_len = vip.prefix_len, device = %vip.device, "virtual address already present and not added by the agent; leaving it, and it will not be removed on release");
                    Ok(AddOutcome::ForeignPresent)
                }
                KernelReply::NotFound(errno) => Err(super::error::from_errno(
                    errno,
                    &action,
                    &vip.device.to_string(),
                )),
                KernelReply::Failed(error) => Err(error),
            },
        }
    }

    /// Takes over a configured address a previous run of the agent left in
    /// place while master, when this run resumes as master (a restart within
    /// Master_Down_Interval): it is the agent's again, so adding it is not a
    /// foreign `EEXIST` and shutdown releases it.
    pub async fn claim(&mut self, vip: &VirtualAddress) -> Result<(), NetlinkError> {
        let action = format!("claiming virtual address {vip}");
        let ifindex = resolve_for(&self.handle, &vip.device, &action).await?;
        self.owned.insert(key_of(vip, ifindex), vip.clone());
        Ok(())
    }

    /// Removes `vip` if, and only if, the agent added it.
    pub async fn remove(&mut self, vip: &VirtualAddress) -> Result<RemoveOutcome, NetlinkError> {
        let action = format!("removing virtual address {vip}");
        let ifindex = match resolve_for(&self.handle, &vip.device, &action).await {
            Ok(ifindex) => ifindex,
            Err(NetlinkError::NoSuchInterface { .. }) => {
                return Ok(self.forget_on_missing_device(vip));
            }
            Err(error) => return Err(error),
        };
        let key = key_of(vip, ifindex);
        let Some(owned) = self.owned.get(&key).cloned() else {
            debug!(address = %vip.address, prefix_len = vip.prefix_len, device = %vip.device, "not removing an address the agent did not add");
            return Ok(RemoveOutcome::NotOwned);
        };
        let outcome = delete(&self.handle, &owned, ifindex).await?;
        self.owned.remove(&key);
        Ok(outcome)
    }

    /// Removes a configured virtual address that a previous run of the agent
    /// left behind when it could not shut down (kill -9, crash, power cut).
    /// Called once at startup, before any instance can be master, and only
    /// for addresses the configuration declares virtual: keepalived also
    /// clears them, and a stale copy would otherwise answer ARP for an
    /// address another node now owns.
    pub async fn remove_stale(
        &mut self,
        vip: &VirtualAddress,
    ) -> Result<RemoveOutcome, NetlinkError> {
        let action = format!("removing stale virtual address {vip}");
        let ifindex = match resolve_for(&self.handle, &vip.device, &action).await {
            Ok(ifindex) => ifindex,
            Err(NetlinkError::NoSuchInterface { .. }) => return Ok(RemoveOutcome::AlreadyGone),
            Err(error) => return Err(error),
        };
        let outcome = delete(&self.handle, vip, ifindex).await?;
        if outcome == RemoveOutcome::Removed {
            warn!(address = %vip.address, device = %vip.device, "removed a virtual address left by a previous run");
        }
        Ok(outcome)
    }

    /// Removes every address the agent added (for shutdown), carrying on past
    /// failures.
    pub async fn release_all(&mut self) -> ReleaseSummary {
        let mut summary = ReleaseSummary::default();
        let owned: Vec<(AddressKey, VirtualAddress)> = self.owned.drain().collect();
        for (key, vip) in owned {
            match delete(&self.handle, &vip, key.ifindex).await {
                Ok(RemoveOutcome::Removed) => summary.removed += 1,
                Ok(_) => summary.already_gone += 1,
                Err(error) => {
                    warn!(address = %vip.address, device = %vip.device, %error, "could not release virtual address");
                    summary.failures.push(error);
                    self.owned.insert(key, vip);
                }
            }
        }
        summary
    }

    /// Whether the agent added `address/prefix_len` on `ifindex`. The
    /// daemon never asks (it only adds and releases); the tests check the
    /// registry with this and [`AddressManager::owned`].
    #[cfg(test)]
    pub fn owns(&self, ifindex: u32, address: IpAddr, prefix_len: u8) -> bool {
        self.owned.contains_key(&AddressKey {
            ifindex,
            address,
            prefix_len,
        })
    }

    /// The addresses the agent added, with the interface index they were added on.
    #[cfg(test)]
    pub fn owned(&self) -> impl Iterator<Item = (u32, &VirtualAddress)> {
        self.owned.iter().map(|(key, vip)| (key.ifindex, vip))
    }

    /// The interface is gone, and its addresses with it.
    fn forget_on_missing_device(&mut self, vip: &VirtualAddress) -> RemoveOutcome {
        let before = self.owned.len();
        self.owned.retain(|_, owned| owned != vip);
        if self.owned.len() < before {
            info!(address = %vip.address, device = %vip.device, "virtual address went away with its interface");
            RemoveOutcome::AlreadyGone
        } else {
            debug!(address = %vip.address, device = %vip.device, "not removing an address the agent did not add (interface absent)");
            RemoveOutcome::NotOwned
        }
    }
}

fn key_of(vip: &VirtualAddress, ifindex: u32) -> AddressKey {
    AddressKey {
        ifindex,
        address: vip.address,
        prefix_len: vip.prefix_len,
    }
}

async fn resolve_for(handle: &Handle, device: &Device, action: &str) -> Result<u32, NetlinkError> {
    resolve(handle, device).await.map_err(|error| match error {
        NetlinkError::NoSuchInterface { device, .. } => NetlinkError::NoSuchInterface {
            action: action.to_owned(),
            device,
        },
        other => other,
    })
}

async fn delete(
    handle: &Handle,
    vip: &VirtualAddress,
    ifindex: u32,
) -> Result<RemoveOutcome, NetlinkError> {
    let action = format!("removing virtual address {vip}");
    let request = handle.address().del(vip.delete_message(ifindex));
    match request.execute().await {
        Ok(()) => {
            info!(address = %vip.address, prefix_len = vip.prefix_len, device = %vip.device, ifindex, "removed virtual address");
            Ok(RemoveOutcome::Removed)
        }
        Err(error) => match classify(error, &action, &vip.device.to_string()) {
            KernelReply::NotFound(_)
            | KernelReply::Failed(NetlinkError::NoSuchInterface { .. }) => {
                info!(address = %vip.address, device = %vip.device, "virtual address was already gone");
                Ok(RemoveOutcome::AlreadyGone)
            }
            KernelReply::AlreadyExists => Err(super::error::from_errno(
                libc::EEXIST,
                &action,
                &vip.device.to_string(),
            )),
            KernelReply::Failed(error) => Err(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::netlink::interface::{InterfaceAddress, Interfaces};
    use crate::netlink::scope::Scope;
    use crate::test_netns::{TestNetns, ip_in};

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    async fn find(handle: &Handle, address: &str) -> Option<InterfaceAddress> {
        let interfaces = Interfaces::new(handle.clone());
        let ifindex = interfaces.index_of("v0").await.unwrap();
        let address = ip(address);
        interfaces
            .addresses(ifindex)
            .await
            .unwrap()
            .into_iter()
            .find(|entry| entry.address == address)
    }

    #[test]
    fn ipv4_vip_with_label_broadcast_and_scope_is_added_and_removed() {
        let namespace = TestNetns::with_veth("vrrpnl-a4");
        namespace.ip(&["addr", "add", "198.51.100.1/24", "dev", "v0"]);
        let name = namespace.name().to_owned();
        namespace.run(|| async move {
            let handle = crate::netlink::connect().unwrap();
            let mut manager = AddressManager::new(handle.clone());
            let vip = VirtualAddress {
                prefix_len: 24,
                broadcast: Some(Ipv4Addr::new(192, 0, 2, 255)),
                scope: Some(Scope::Link),
                label: Some("v0:vip".to_owned()),
                ..VirtualAddress::new(ip("192.0.2.30"), "v0")
            };
            assert_eq!(manager.add(&vip).await.unwrap(), AddOutcome::Added);
            let added = find(&handle, "192.0.2.30").await.expect("VIP present");
            assert_eq!(added.prefix_len, 24);
            assert_eq!(added.scope, Scope::Link);
            assert_eq!(added.label.as_deref(), Some("v0:vip"));
            assert_eq!(added.broadcast, Some(Ipv4Addr::new(192, 0, 2, 255)));
            let shown = ip_in(&name, &["-o", "addr", "show", "dev", "v0"]);
            assert!(
                shown.contains("inet 192.0.2.30/24 brd 192.0.2.255 scope link v0:vip"),
                "{shown}"
            );
            assert!(manager.owns(added.ifindex, vip.address, 24));

            assert_eq!(manager.add(&vip).await.unwrap(), AddOutcome::AlreadyOwned);
            assert_eq!(manager.remove(&vip).await.unwrap(), RemoveOutcome::Removed);
            assert_eq!(find(&handle, "192.0.2.30").await, None);
            assert_eq!(manager.remove(&vip).await.unwrap(), RemoveOutcome::NotOwned);
            assert!(find(&handle, "198.51.100.1").await.is_some());

            // keepalived's default: a bare address is a /32 without broadcast.
            let bare = VirtualAddress::new(ip("192.0.2.10"), "v0");
            assert_eq!(manager.add(&bare).await.unwrap(), AddOutcome::Added);
            let added = find(&handle, "192.0.2.10").await.unwrap();
            assert_eq!(
                (added.prefix_len, added.broadcast, added.scope),
                (32, None, Scope::Global)
            );
            assert_eq!(manager.remove(&bare).await.unwrap(), RemoveOutcome::Removed);
        });
    }

    #[test]
    fn ipv6_vips_are_nodad_and_host_routes_are_deprecated() {
        let namespace = TestNetns::with_veth("vrrpnl-a6");
        // DAD stays on here so IFA_F_NODAD is what makes the VIP usable.
        namespace.sysctl("net.ipv6.conf.v0.accept_dad=1");
        namespace.run(|| async move {
            let handle = crate::netlink::connect().unwrap();
            let mut manager = AddressManager::new(handle.clone());
            let host = VirtualAddress::new(ip("2001:db8::10"), "v0");
            let subnet = VirtualAddress {
                prefix_len: 64,
                ..VirtualAddress::new(ip("2001:db8:1::20"), "v0")
            };
            assert_eq!(manager.add(&host).await.unwrap(), AddOutcome::Added);
            assert_eq!(manager.add(&subnet).await.unwrap(), AddOutcome::Added);
            let host_entry = find(&handle, "2001:db8::10").await.unwrap();
            assert_eq!(host_entry.prefix_len, 128);
            assert!(
                host_entry.deprecated && !host_entry.tentative,
                "{host_entry:?}"
            );
            let subnet_entry = find(&handle, "2001:db8:1::20").await.unwrap();
            assert!(
                !subnet_entry.deprecated && !subnet_entry.tentative,
                "{subnet_entry:?}"
            );

            let summary = manager.release_all().await;
            assert_eq!((summary.removed, summary.already_gone), (2, 0));
            assert!(summary.failures.is_empty(), "{:?}", summary.failures);
            assert_eq!(find(&handle, "2001:db8::10").await, None);
            assert_eq!(find(&handle, "2001:db8:1::20").await, None);
            assert_eq!(manager.owned().count(), 0);
        });
    }

    #[test]
    fn an_operators_address_is_never_removed() {
        let namespace = TestNetns::with_veth("vrrpnl-op");
        namespace.ip(&["addr", "add", "192.0.2.50/32", "dev", "v0"]);
        namespace.ip(&["addr", "add", "2001:db8::50/128", "dev", "v0"]);
        namespace.run(|| async move {
            let handle = crate::netlink::connect().unwrap();
            let mut manager = AddressManager::new(handle.clone());
            let operator_v4 = VirtualAddress::new(ip("192.0.2.50"), "v0");
            let operator_v6 = VirtualAddress::new(ip("2001:db8::50"), "v0");
            let ours = VirtualAddress::new(ip("192.0.2.51"), "v0");
            assert_eq!(
                manager.add(&operator_v4).await.unwrap(),
                AddOutcome::ForeignPresent
            );
            assert_eq!(
                manager.add(&operator_v6).await.unwrap(),
                AddOutcome::ForeignPresent
            );
            assert_eq!(manager.add(&ours).await.unwrap(), AddOutcome::Added);

            assert_eq!(
                manager.remove(&operator_v4).await.unwrap(),
                RemoveOutcome::NotOwned
            );
            assert_eq!(
                manager.remove(&operator_v6).await.unwrap(),
                RemoveOutcome::NotOwned
            );
            let summary = manager.release_all().await;
            assert_eq!((summary.removed, summary.already_gone), (1, 0));

            assert!(find(&handle, "192.0.2.50").await.is_some());
            assert!(find(&handle, "2001:db8::50").await.is_some());
            assert_eq!(find(&handle, "192.0.2.51").await, None);
        });
    }

    #[test]
    fn addresses_removed_behind_our_back_and_missing_interfaces() {
        let namespace = TestNetns::with_veth("vrrpnl-gone");
        let name = namespace.name().to_owned();
        namespace.run(|| async move {
            let handle = crate::netlink::connect().unwrap();
            let mut manager = AddressManager::new(handle.clone());
            let vip = VirtualAddress::new(ip("203.0.113.7"), "v0");
            assert_eq!(manager.add(&vip).await.unwrap(), AddOutcome::Added);
            ip_in(&name, &["addr", "del", "203.0.113.7/32", "dev", "v0"]);
            assert_eq!(
                manager.remove(&vip).await.unwrap(),
                RemoveOutcome::AlreadyGone
            );

            // The address goes away with its interface.
            assert_eq!(manager.add(&vip).await.unwrap(), AddOutcome::Added);
            ip_in(&name, &["link", "del", "v0"]);
            assert_eq!(
                manager.remove(&vip).await.unwrap(),
                RemoveOutcome::AlreadyGone
            );
            assert_eq!(manager.owned().count(), 0);

            let error = manager.add(&vip).await.unwrap_err();
            assert!(
                matches!(&error, NetlinkError::NoSuchInterface { device, .. } if device == "v0"),
                "{error:?}"
            );
            let text = error.to_string();
            assert!(
                text.contains("adding virtual address 203.0.113.7/32 dev v0"),
                "{text}"
            );
        });
    }

    #[test]
    fn kernel_refusals_carry_the_kernels_reason() {
        let namespace = TestNetns::with_veth("vrrpnl-einval");
        namespace.ip(&["addr", "add", "192.0.2.1/24", "dev", "v0"]);
        namespace.run(|| async move {
            let handle = crate::netlink::connect().unwrap();
            let mut manager = AddressManager::new(handle);
            // The kernel wants one scope per IPv4 subnet on an interface.
            let vip = VirtualAddress {
                prefix_len: 24,
                scope: Some(Scope::Link),
                ..VirtualAddress::new(ip("192.0.2.30"), "v0")
            };
            let error = manager.add(&vip).await.unwrap_err();
            assert!(
                matches!(
                    error,
                    NetlinkError::Kernel {
                        errno: libc::EINVAL,
                        ..
                    }
                ),
                "{error:?}"
            );
            let text = error.to_string();
            assert!(
                text.starts_with("adding virtual address 192.0.2.30/24 dev v0: "),
                "{text}"
            );
            assert!(
                text.contains("scope"),
                "the kernel's explanation is quoted: {text}"
            );
            assert_eq!(manager.owned().count(), 0);
        });
    }
}
