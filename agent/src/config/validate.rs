//! Checks that need the whole configuration: cross-references, identity
//! clashes, and the per-version limits of the advert interval (which depend
//! on the instance's final VRRP version).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use super::diagnostic::{Diagnostics, Position};
use super::model::{AddressFamily, AuthType, Config, InitialState, Version, VrrpInstance};

pub fn validate(config: &mut Config, diags: &mut Diagnostics) {
    for instance in &mut config.vrrp_instances {
        check_required(instance, diags);
        normalize_advert_int(instance, diags);
        check_families(instance, diags);
        check_advert_size(instance, diags);
        check_runnable(instance, diags);
        if !instance.preempt && instance.state == InitialState::Master {
            diags.warning(
                &instance.positions.name,
                format!(
                    "vrrp_instance {}: nopreempt has no effect with initial state MASTER; expected state BACKUP",
                    instance.name
                ),
            );
        }
    }
    check_instance_count(config, diags);
    check_unique_names(config, diags);
    check_references(config, diags);
    check_identity_clashes(config, diags);
    check_shared_addresses(config, diags);
    check_tracked_weights(config, diags);
    super::track_process::check(config, diags);
    check_sync_groups(config, diags);
}

/// The kernel's per-router maps have room for `MAX_INSTANCES` records; an
/// instance beyond that would never see its master's adverts and would
/// become a second master.
fn check_instance_count(config: &Config, diags: &mut Diagnostics) {
    let limit = agent_common::MAX_INSTANCES as usize;
    if let Some(first_excess) = config.vrrp_instances.get(limit) {
        diags.error(
            &first_excess.positions.name,
            format!(
                "vrrp_instance {}: this is instance {} of {}; vrrp-agent runs at most {limit} VRRP instances on one node (the kernel maps are sized for that); expected at most {limit} vrrp_instance blocks",
                first_excess.name,
                limit + 1,
                config.vrrp_instances.len()
            ),
        );
    }
}

/// keepalived sizes adverts for an interface MTU of 1500 when it cannot ask
/// the interface (its DEFAULT_MTU), counting the Ethernet header in it.
const DEFAULT_MTU: usize = 1500;
const ETHERNET_HEADER_LEN: usize = 14;
const VRRP_HEADER_LEN: usize = 8;
const V2_AUTH_LEN: usize = 8;
/// The longest VRRP message our XDP program parses (`MAX_VRRP_LEN` in
/// agent-ebpf/src/packet.rs); a peer running vrrp-agent drops longer ones.
pub(super) const XDP_MAX_VRRP_LEN: usize = 1480;

/// How many virtual addresses one advert can carry: the one-byte count
/// field, keepalived's room in a 1500-byte MTU (which it enforces by moving
/// the excess out of the advert), and what our XDP parses, whichever is least.
pub fn max_advertised_addresses(family: AddressFamily, version: Version) -> usize {
    let (ip_header, address) = match family {
        AddressFamily::Ipv4 => (20, 4),
        AddressFamily::Ipv6 => (40, 16),
    };
    let auth = if version == Version::V2 && family == AddressFamily::Ipv4 {
        V2_AUTH_LEN
    } else {
        0
    };
    let keepalived =
        (DEFAULT_MTU - ETHERNET_HEADER_LEN - ip_header - VRRP_HEADER_LEN - auth) / address;
    let xdp = (XDP_MAX_VRRP_LEN - VRRP_HEADER_LEN - auth) / address;
    usize::from(u8::MAX).min(keepalived).min(xdp)
}

/// An advert that cannot be sent or parsed silences the master: the encoder
/// refuses more than 255 addresses, and a peer's XDP drops what it cannot
/// parse. keepalived moves the excess to virtual_ipaddress_excluded with a
/// configuration error; we refuse and say how to do that.
fn check_advert_size(instance: &VrrpInstance, diags: &mut Diagnostics) {
    let limit = max_advertised_addresses(instance.family, instance.version);
    let count = instance.virtual_ipaddress.len();
    let Some(first_excess) = instance.virtual_ipaddress.get(limit) else {
        return;
    };
    let why = match instance.family {
        AddressFamily::Ipv4 => "the advert's address count is one byte",
        AddressFamily::Ipv6 => {
            "keepalived's room in a 1500-byte MTU; vrrp-agent's XDP parses adverts of at most 1480 bytes, 92 IPv6 addresses"
        }
    };
    diags.error(
        &first_excess.position,
        format!(
            "vrrp_instance {} advertises {count} {} addresses; at most {limit} fit one advert ({why}); expected at most {limit} in virtual_ipaddress (move the rest to virtual_ipaddress_excluded, which is not advertised)",
            instance.name,
            family_name(instance.family),
        ),
    );
}

/// Settings the daemon refuses when it plans an instance, reported here so
/// that `-t` refuses them too.
fn check_runnable(instance: &VrrpInstance, diags: &mut Diagnostics) {
    if instance.version == Version::V2
        && let Some(auth) = &instance.authentication
        && auth.auth_type == AuthType::Ah
    {
        let at = instance
            .positions
            .authentication
            .as_ref()
            .unwrap_or(&instance.positions.name);
        diags.error(
            at,
            format!(
                "vrrp_instance {}: auth_type AH is not supported by vrrp-agent; expected auth_type PASS or no authentication block",
                instance.name
            ),
        );
    }
    let sources = [
        ("unicast_src_ip", instance.unicast_src_ip),
        ("mcast_src_ip", instance.mcast_src_ip),
    ];
    for (what, address) in sources {
        if let Some(a) = address
            && a.is_unspecified()
        {
            diags.error(
                &instance.positions.name,
                format!(
                    "vrrp_instance {}: {what} {a} is unspecified and cannot source adverts; expected an address of this host on {}",
                    instance.name,
                    if instance.interface.is_empty() {
                        "the interface its unicast peers are reached through"
                    } else {
                        &instance.interface
                    }
                ),
            );
        }
    }
}

fn check_required(instance: &VrrpInstance, diags: &mut Diagnostics) {
    if instance.positions.interface.is_none()
        && let Err(error) = super::unicast::interface_optional(instance)
    {
        diags.error(&instance.positions.name, error);
    }
    if instance.positions.virtual_router_id.is_none() {
        diags.error(
            &instance.positions.name,
            format!(
                "vrrp_instance {} has no virtual_router_id; expected `virtual_router_id 1-255` in its block",
                instance.name
            ),
        );
    }
    if instance.virtual_ipaddress.is_empty() {
        diags.warning(
            &instance.positions.name,
            format!(
                "vrrp_instance {} has no virtual_ipaddress; it will advertise no addresses",
                instance.name
            ),
        );
    }
}

/// keepalived accepts 0.01-255 s at parse time, then fits the value to the
/// version: v2 carries whole seconds (rounded to nearest, at least 1), v3
/// centiseconds (rounded to nearest 10 ms, at most 40.95 s). It warns and
/// adjusts rather than rejecting, and so do we.
fn normalize_advert_int(instance: &mut VrrpInstance, diags: &mut Diagnostics) {
    let at = instance
        .positions
        .advert_int
        .clone()
        .unwrap_or_else(|| instance.positions.name.clone());
    let micros = instance.advert_int.as_micros();
    let written = instance.advert_int.as_secs_f64();
    match instance.version {
        Version::V2 => {
            if !micros.is_multiple_of(1_000_000) {
                let seconds = u64::try_from(micros.saturating_add(500_000) / 1_000_000)
                    .unwrap_or(1)
                    .clamp(1, 255);
                diags.warning(
                    &at,
                    format!(
                        "vrrp_instance {}: VRRPv2 advert_int {written}s must be a whole number of seconds; rounded to {seconds}s as keepalived does",
                        instance.name
                    ),
                );
                instance.advert_int = Duration::from_secs(seconds);
            }
        }
        Version::V3 => {
            let mut centis = u64::try_from((micros.saturating_add(5_000)) / 10_000)
                .unwrap_or(4095)
                .max(1);
            if !micros.is_multiple_of(10_000) {
                diags.warning(
                    &at,
                    format!(
                        "vrrp_instance {}: VRRPv3 advert_int {written}s must be in units of 10 ms; rounded to {}s as keepalived does",
                        instance.name,
                        Duration::from_millis(centis * 10).as_secs_f64()
                    ),
                );
            }
            if centis > 4095 {
                diags.warning(
                    &at,
                    format!(
                        "vrrp_instance {}: VRRPv3 advert_int {written}s is above the maximum of 40.95s; using 40.95s as keepalived does",
                        instance.name
                    ),
                );
                centis = 4095;
            }
            instance.advert_int = Duration::from_millis(centis * 10);
        }
    }
}

fn family_name(family: AddressFamily) -> &'static str {
    match family {
        AddressFamily::Ipv4 => "IPv4",
        AddressFamily::Ipv6 => "IPv6",
    }
}

fn check_families(instance: &VrrpInstance, diags: &mut Diagnostics) {
    let family = instance.family;
    for vip in &instance.virtual_ipaddress {
        if AddressFamily::of(&vip.address) != family {
            diags.error(
                &vip.position,
                format!(
                    "virtual address {} is {} but vrrp_instance {} is {} (the family of its first address); expected all virtual_ipaddress entries in one family (put others in virtual_ipaddress_excluded)",
                    vip.address,
                    family_name(AddressFamily::of(&vip.address)),
                    instance.name,
                    family_name(family)
                ),
            );
        }
    }
    let sources = [
        ("unicast_src_ip", instance.unicast_src_ip),
        ("mcast_src_ip", instance.mcast_src_ip),
    ];
    for (what, address) in sources {
        if let Some(a) = address
            && AddressFamily::of(&a) != family
        {
            diags.error(
                &instance.positions.name,
                format!(
                    "vrrp_instance {}: {what} {a} is not {}; expected an address of the instance's family",
                    instance.name,
                    family_name(family)
                ),
            );
        }
    }
    for peer in &instance.unicast_peer {
        if AddressFamily::of(&peer.address) != family {
            diags.error(
                &instance.positions.name,
                format!(
                    "vrrp_instance {}: unicast_peer {} is not {}; expected peers of the instance's family",
                    instance.name,
                    peer.address,
                    family_name(family)
                ),
            );
        }
    }
}

fn check_unique_names(config: &Config, diags: &mut Diagnostics) {
    fn unique<'a>(
        kind: &str,
        items: impl Iterator<Item = (&'a str, &'a Position)>,
        diags: &mut Diagnostics,
    ) {
        let mut seen: HashMap<&str, &Position> = HashMap::new();
        for (name, at) in items {
            if let Some(first) = seen.get(name) {
                diags.error(
                    at,
                    format!(
                        "{kind} {name} is defined twice (first at {first}); expected unique names"
                    ),
                );
            } else {
                seen.insert(name, at);
            }
        }
    }
    unique(
        "vrrp_instance",
        config
            .vrrp_instances
            .iter()
            .map(|i| (i.name.as_str(), &i.positions.name)),
        diags,
    );
    unique(
        "vrrp_script",
        config
            .vrrp_scripts
            .iter()
            .map(|s| (s.name.as_str(), &s.position)),
        diags,
    );
    unique(
        "track_file",
        config
            .track_files
            .iter()
            .map(|t| (t.name.as_str(), &t.position)),
        diags,
    );
    unique(
        "vrrp_sync_group",
        config
            .vrrp_sync_groups
            .iter()
            .map(|g| (g.name.as_str(), &g.position)),
        diags,
    );
}

fn names_or_none<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<&str> = names.collect();
    if list.is_empty() {
        "none is defined".to_string()
    } else {
        format!("defined: {}", list.join(", "))
    }
}

fn check_references(config: &Config, diags: &mut Diagnostics) {
    for instance in &config.vrrp_instances {
        for reference in &instance.track_script {
            if config.script(&reference.name).is_none() {
                diags.error(
                    &reference.position,
                    format!(
                        "track_script \"{}\" in vrrp_instance {} names no vrrp_script; expected the name of a vrrp_script ({})",
                        reference.name,
                        instance.name,
                        names_or_none(config.vrrp_scripts.iter().map(|s| s.name.as_str()))
                    ),
                );
            }
        }
        for reference in &instance.track_file {
            if config.track_file(&reference.name).is_none() {
                diags.error(
                    &reference.position,
                    format!(
                        "track_file \"{}\" in vrrp_instance {} names no vrrp_track_file; expected the name of a vrrp_track_file ({})",
                        reference.name,
                        instance.name,
                        names_or_none(config.track_files.iter().map(|t| t.name.as_str()))
                    ),
                );
            }
        }
    }
}

/// The datapath keeps one filter and one peer table per interface, VRID
/// and family, so two instances with the same triple overwrite each other in
/// the kernel. keepalived lets unicast instances with disjoint peers share a
/// VRID (it tells them apart by sender); vrrp-agent cannot, and says so.
fn check_identity_clashes(config: &Config, diags: &mut Diagnostics) {
    let mut seen: HashMap<(&str, u8, AddressFamily), &VrrpInstance> = HashMap::new();
    for instance in &config.vrrp_instances {
        // Instances whose interface or VRID was missing or invalid have
        // already been reported; comparing placeholders would only add noise.
        if instance.interface.is_empty() || instance.virtual_router_id == 0 {
            continue;
        }
        let key = (
            instance.interface.as_str(),
            instance.virtual_router_id,
            instance.family,
        );
        let Some(first) = seen.get(&key) else {
            seen.insert(key, instance);
            continue;
        };
        let at = instance
            .positions
            .virtual_router_id
            .as_ref()
            .unwrap_or(&instance.positions.name);
        let first_at = first
            .positions
            .virtual_router_id
            .as_ref()
            .unwrap_or(&first.positions.name);
        let unicast = if !instance.unicast_peer.is_empty() && !first.unicast_peer.is_empty() {
            " (keepalived allows this for unicast instances with different peers; vrrp-agent's datapath keeps one filter and peer table per interface, VRID and family, so the second would replace the first)"
        } else {
            ""
        };
        diags.error(
            at,
            format!(
                "vrrp_instance {} uses virtual_router_id {} with {} on {}, as vrrp_instance {} does (at {first_at}){unicast}; expected a VRID unique per interface and family",
                instance.name,
                instance.virtual_router_id,
                family_name(instance.family),
                instance.interface,
                first.name
            ),
        );
    }
}

/// The egress guard is keyed by address alone: when one instance left
/// MASTER it would close the address for the other, which keeps it.
/// keepalived does not check this.
fn check_shared_addresses(config: &Config, diags: &mut Diagnostics) {
    let mut owner: HashMap<IpAddr, (&str, &Position)> = HashMap::new();
    for instance in &config.vrrp_instances {
        let mut own: HashMap<IpAddr, &Position> = HashMap::new();
        for vip in instance
            .virtual_ipaddress
            .iter()
            .chain(&instance.virtual_ipaddress_excluded)
        {
            own.entry(vip.address).or_insert(&vip.position);
            match owner.get(&vip.address) {
                Some((other, first_at)) if *other != instance.name => diags.error(
                    &vip.position,
                    format!(
                        "virtual address {} of vrrp_instance {} is also a virtual address of vrrp_instance {other} (at {first_at}); expected each address in one instance only (one instance's change of state would remove or block the other's address)",
                        vip.address, instance.name
                    ),
                ),
                _ => {}
            }
        }
        for (address, at) in own {
            owner.entry(address).or_insert((instance.name.as_str(), at));
        }
    }
}

/// The election accepts tracked weights of -253..=253; a vrrp_track_file's
/// own weight may be anything keepalived reads, and a `track_file` entry's
/// up to 254, which the daemon would then refuse to start with.
fn check_tracked_weights(config: &Config, diags: &mut Diagnostics) {
    for instance in &config.vrrp_instances {
        for reference in &instance.track_file {
            let weight = match (reference.weight, config.track_file(&reference.name)) {
                (Some(weight), _) => weight,
                (None, Some(file)) => file.weight,
                (None, None) => continue,
            };
            if !(-253..=253).contains(&weight) {
                let origin = if reference.weight.is_some() {
                    String::new()
                } else {
                    format!(" (the weight of vrrp_track_file {})", reference.name)
                };
                diags.error(
                    &reference.position,
                    format!(
                        "track_file \"{}\" in vrrp_instance {} has weight {weight}{origin}; expected -253..253 (vrrp-agent tracks a file as up or down, with one weight)",
                        reference.name, instance.name
                    ),
                );
            }
        }
    }
}

fn check_sync_groups(config: &Config, diags: &mut Diagnostics) {
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for group in &config.vrrp_sync_groups {
        if group.group.is_empty() {
            diags.error(
                &group.position,
                format!(
                    "vrrp_sync_group {} has no members; expected `group {{` with vrrp_instance names `}}`",
                    group.name
                ),
            );
        } else if group.group.len() == 1 {
            diags.warning(
                &group.position,
                format!(
                    "vrrp_sync_group {} has only one member; a sync group needs two or more to do anything",
                    group.name
                ),
            );
        }
        for (member, at) in group.group.iter().zip(&group.member_positions) {
            if config.instance(member).is_none() {
                diags.error(
                    at,
                    format!(
                        "vrrp_sync_group {} member \"{member}\" names no vrrp_instance; expected the name of a vrrp_instance ({})",
                        group.name,
                        names_or_none(config.vrrp_instances.iter().map(|i| i.name.as_str()))
                    ),
                );
            } else if let Some(other) = owner.get(member.as_str()) {
                diags.error(
                    at,
                    format!(
                        "vrrp_instance {member} is already in vrrp_sync_group {other}; expected each instance in at most one sync group"
                    ),
                );
            } else {
                owner.insert(member, &group.name);
            }
        }
    }
}
