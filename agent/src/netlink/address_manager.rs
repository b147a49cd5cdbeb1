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
                KernelReply::NotFound => Err(super::error::from_errno(
                    libc::ENOENT,
                    &action,
                    &vip.device.to_string(),
                )),
                KernelReply::Failed(error) => Err(error),
            },
        }
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

    /// Whether the agent added `address/prefix_len` on `ifindex`.
    pub fn owns(&self, ifindex: u32, address: IpAddr, prefix_len: u8) -> bool {
        self.owned.contains_key(&AddressKey {
            ifindex,
            address,
            prefix_len,
        })
    }

    /// The addresses the agent added, with the interface index they were added on.
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
            KernelReply::NotFound | KernelReply::Failed(NetlinkError::NoSuchInterface { .. }) => {
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
