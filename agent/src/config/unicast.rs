//! keepalived's unicast rules that need the whole instance: keywords that
//! ask for unicast without a peer, instances without `interface`, and
//! finding the interface such an instance runs on.

use std::net::IpAddr;

use super::{
    Config,
    diagnostic::{Diagnostics, Position},
    model::VrrpInstance,
};

/// Warns where keepalived's unicast rules change what the file says.
/// `unicast_at` is where the first unicast keyword is.
pub(super) fn check(
    instance: &VrrpInstance,
    unicast_at: Option<&Position>,
    diags: &mut Diagnostics,
) {
    let name = &instance.name;
    if let Some(at) = unicast_at
        && instance.unicast_peer.is_empty()
    {
        if instance.unicast_fault_no_peer {
            diags.warning(
                at,
                format!(
                    "vrrp_instance {name} asks for unicast but has no unicast peers; it stays in FAULT (unicast_fault_no_peer) until peers are configured"
                ),
            );
        } else {
            diags.warning(
                at,
                format!(
                    "vrrp_instance {name}: a unicast keyword without any unicast_peer runs the instance over multicast, as keepalived does (deprecated there); add unicast_peer, or unicast_fault_no_peer to stay in FAULT instead"
                ),
            );
        }
    }
}

/// Whether `instance` may run without `interface`: keepalived runs a
/// unicast instance from its `unicast_src_ip` alone. `Err` says what is
/// missing.
pub(super) fn interface_optional(instance: &VrrpInstance) -> Result<(), String> {
    let name = &instance.name;
    if instance.unicast_peer.is_empty() {
        return Err(format!(
            "vrrp_instance {name} has no interface; expected `interface NAME` in its block"
        ));
    }
    match instance.unicast_src_ip {
        None => Err(format!(
            "vrrp_instance {name}: unicast instances must have unicast_src_ip or interface; expected `interface NAME` or `unicast_src_ip ADDRESS` in its block"
        )),
        Some(IpAddr::V6(v6)) if v6.is_unicast_link_local() => Err(format!(
            "vrrp_instance {name}: unicast_src_ip {v6} is link-local, which names no interface; expected `interface NAME`, or a non-link-local unicast_src_ip"
        )),
        Some(_) => Ok(()),
    }
}

/// Why an instance written without `interface` cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "{at}: vrrp_instance {instance} has no interface and no interface of this host holds its unicast_src_ip {address}; add the address to the interface the peers are reached through, or set `interface NAME`"
    )]
    NoHolder {
        at: Position,
        instance: String,
        address: IpAddr,
    },
    #[error(
        "{at}: vrrp_instance {instance} runs on {interface} (it holds unicast_src_ip {address}) with virtual_router_id {vrid}, as vrrp_instance {other} does; expected a VRID unique per interface and family"
    )]
    Clash {
        at: Position,
        instance: String,
        address: IpAddr,
        interface: String,
        vrid: u8,
        other: String,
    },
}

/// Gives every instance written without `interface` the interface that
/// holds its `unicast_src_ip` (`holder`), which is where its adverts leave
/// and arrive. keepalived leaves such an instance unbound and lets routing
/// pick; vrrp-agent needs the interface for its receive filter and sockets,
/// which hold one instance per interface, VRID and family (checked here for
/// the resolved ones, as `-t` checks the others).
pub fn resolve_interfaces(
    config: &mut Config,
    holder: &dyn Fn(IpAddr) -> Option<String>,
) -> Result<(), Vec<ResolveError>> {
    let mut errors = Vec::new();
    let mut resolved = Vec::new();
    for (index, instance) in config.vrrp_instances.iter_mut().enumerate() {
        if !instance.interface.is_empty() {
            continue;
        }
        let Some(address) = instance.unicast_src_ip else {
            continue;
        };
        let at = instance
            .positions
            .unicast_src_ip
            .clone()
            .unwrap_or_else(|| instance.positions.name.clone());
        match holder(address) {
            Some(interface) => {
                instance.interface = interface;
                resolved.push((index, at, address));
            }
            None => errors.push(ResolveError::NoHolder {
                at,
                instance: instance.name.clone(),
                address,
            }),
        }
    }
    let instances = &config.vrrp_instances;
    for (index, at, address) in resolved {
        let instance = &instances[index];
        let clash = instances.iter().enumerate().find(|(other, candidate)| {
            *other != index
                && candidate.interface == instance.interface
                && candidate.virtual_router_id == instance.virtual_router_id
                && candidate.family == instance.family
        });
        if let Some((_, other)) = clash {
            errors.push(ResolveError::Clash {
                at,
                instance: instance.name.clone(),
                address,
                interface: instance.interface.clone(),
                vrid: instance.virtual_router_id,
                other: other.name.clone(),
            });
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
