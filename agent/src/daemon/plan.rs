//! Turns a parsed keepalived.conf and the host's interfaces into what the
//! daemon runs: per instance, its election configuration, where its adverts
//! go, what it announces and tracks. Pure, so every rule is unit-tested.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use agent_common::{
    AUTH_NONE, AUTH_PASS, FAMILY_IPV4, FAMILY_IPV6, INSTANCE_CHECK_UNICAST_SOURCE,
    INSTANCE_UNICAST, InstanceFilter, InstanceKey,
};
use thiserror::Error;

use crate::{
    config::{
        self, Config,
        model::{AuthType, GarpSettings, Notify, VirtualAddress, VirtualRoute},
    },
    datapath::UnicastPeerFilter,
    datapath::Vmac,
    vrrp::{
        ChecksumForm, Version,
        election::{InitialState, InstanceConfig, TrackedItem},
        wire::{AddressFamily, Auth, VirtualAddresses},
    },
};

/// What the daemon needs to know about an interface to plan an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// The primary (first) address first.
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6_link_local: Option<Ipv6Addr>,
    pub up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    #[error(
        "vrrp_instance {instance}: interface \"{interface}\" does not exist (check `ip link`, or fix `interface` in the configuration)"
    )]
    MissingInterface { instance: String, interface: String },
    #[error(
        "vrrp_instance {instance}: interface \"{interface}\" has no {family} address to send adverts from; add one, or set mcast_src_ip / unicast_src_ip"
    )]
    NoSourceAddress {
        instance: String,
        interface: String,
        family: &'static str,
    },
    #[error("vrrp_instance {instance}: {detail}")]
    Election { instance: String, detail: String },
    #[error("vrrp_instance {instance}: authentication type AH is not supported; use PASS or none")]
    AuthAh { instance: String },
}

/// Something an instance tracks, index-aligned with its election's
/// `tracked` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackedSource {
    Script(String),
    Interface(String),
    File(String),
    /// A configuration that keeps the instance in FAULT for as long as it
    /// holds (`unicast_fault_no_peer` without peers): never up.
    Config(String),
    Process(String),
}

/// The `TrackedSource::Config` of `unicast_fault_no_peer` without peers.
pub const NO_UNICAST_PEER: &str = "unicast_fault_no_peer";

/// Notify hooks of one instance or sync group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotifyPlan {
    pub master: Option<Notify>,
    pub backup: Option<Notify>,
    pub fault: Option<Notify>,
    pub stop: Option<Notify>,
    pub generic: Option<Notify>,
    /// `notify_master_rx_lower_pri` (instances only).
    pub master_rx_lower_pri: Option<Notify>,
    pub smtp_alert: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstancePlan {
    pub name: String,
    pub interface: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub family: AddressFamily,
    pub version: Version,
    pub election: InstanceConfig,
    /// Adverts leave from here.
    pub source: IpAddr,
    /// Multicast group, or the unicast peers.
    pub destinations: Vec<IpAddr>,
    pub group: IpAddr,
    pub checksum_form: ChecksumForm,
    /// keepalived's `old_unicast_checksum`: the pseudo-header of unicast
    /// adverts names the multicast group instead of the peer.
    pub old_unicast_checksum: bool,
    pub auth: Auth,
    /// What adverts carry: `virtual_ipaddress` without `virtual_ipaddress_excluded`.
    pub advertised: VirtualAddresses,
    /// Every address added on becoming master (including excluded ones).
    pub vips: Vec<VirtualAddress>,
    pub routes: Vec<VirtualRoute>,
    pub tracked: Vec<TrackedSource>,
    pub notify: NotifyPlan,
    pub garp: GarpSettings,
    /// Pause between two announcement frames of this instance:
    /// `vrrp_garp_interval` for IPv4 (gratuitous ARP), `vrrp_gna_interval`
    /// for IPv6 (unsolicited NA), as keepalived spaces each kind separately.
    pub announce_spacing: std::time::Duration,
    pub filter: InstanceFilter,
    /// TTL / hop limit of adverts to unicast peers; `None` leaves the
    /// socket's 255.
    pub unicast_ttl: Option<u8>,
    /// The peers the kernel accepts adverts from when the instance checks
    /// unicast sources; empty otherwise.
    pub unicast_sources: Vec<UnicastPeerFilter>,
    /// `use_vmac` / `vmac_xmit_base`.
    pub vmac: Vmac,
}

impl InstancePlan {
    /// The MAC the instance answers with while master: its virtual router
    /// MAC with `use_vmac`, else the interface's.
    pub fn answering_mac(&self) -> [u8; 6] {
        if self.vmac.is_on() {
            agent_common::virtual_mac(self.election.vrid, family_code(self.family))
        } else {
            self.mac
        }
    }

    /// Identity kept across reloads: an instance with the same interface,
    /// VRID and family keeps its state.
    pub fn identity(&self) -> (String, u8, AddressFamily) {
        (self.interface.clone(), self.election.vrid, self.family)
    }

    pub fn datapath_key(&self) -> InstanceKey {
        InstanceKey::new(self.ifindex, self.election.vrid, family_code(self.family))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    /// `None` for an instance outside any `vrrp_sync_group`.
    pub name: Option<String>,
    pub members: Vec<InstancePlan>,
    pub notify: NotifyPlan,
}

/// What a tracker runs, as configured; a reload restarts a tracker only
/// when this changes.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackerConfig {
    Script(config::model::VrrpScript),
    File(config::model::TrackFile),
    Process(config::model::TrackProcess),
}

/// The global settings every notify hook and tracked script depends on: a
/// reload that changes them rebuilds hooks and script trackers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HooksContext {
    pub script_user: Option<config::model::RunAs>,
    pub enable_script_security: bool,
    pub notification_email: Vec<String>,
    pub notification_email_from: Option<String>,
    pub smtp_server: Option<config::model::SmtpServer>,
    pub smtp_connect_timeout: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub router_id: String,
    pub groups: Vec<GroupPlan>,
    /// One entry per script or file some instance tracks: scripts no
    /// instance tracks are not run, as keepalived does.
    pub trackers: std::collections::BTreeMap<TrackedSource, TrackerConfig>,
    pub hooks: HooksContext,
}

impl Plan {
    pub fn instances(&self) -> impl Iterator<Item = &InstancePlan> {
        self.groups.iter().flat_map(|group| group.members.iter())
    }
}

pub fn family_code(family: AddressFamily) -> u8 {
    match family {
        AddressFamily::Ipv4 => FAMILY_IPV4,
        AddressFamily::Ipv6 => FAMILY_IPV6,
    }
}

/// Plans every instance; all problems are reported, not only the first.
pub fn plan(
    config: &Config,
    interfaces: &dyn Fn(&str) -> Option<InterfaceInfo>,
    hostname: &str,
) -> Result<Plan, Vec<PlanError>> {
    let mut errors = Vec::new();
    let mut planned: Vec<Option<InstancePlan>> = config
        .vrrp_instances
        .iter()
        .map(
            |instance| match plan_instance(config, instance, interfaces) {
                Ok(plan) => Some(plan),
                Err(error) => {
                    errors.push(error);
                    None
                }
            },
        )
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut groups = Vec::new();
    for group in &config.vrrp_sync_groups {
        let members: Vec<InstancePlan> = group
            .group
            .iter()
            .filter_map(|name| {
                let index = config.vrrp_instances.iter().position(|i| &i.name == name)?;
                planned.get_mut(index)?.take()
            })
            .collect();
        if members.is_empty() {
            continue;
        }
        groups.push(GroupPlan {
            name: Some(group.name.clone()),
            members,
            notify: NotifyPlan {
                master: unplaced_notify(&group.notify_master),
                backup: unplaced_notify(&group.notify_backup),
                fault: unplaced_notify(&group.notify_fault),
                stop: unplaced_notify(&group.notify_stop),
                generic: unplaced_notify(&group.notify),
                master_rx_lower_pri: None,
                smtp_alert: group.smtp_alert || config.global_defs.smtp_alert,
            },
        });
    }
    groups.extend(planned.into_iter().flatten().map(|member| GroupPlan {
        name: None,
        members: vec![member],
        notify: NotifyPlan::default(),
    }));
    let mut trackers = std::collections::BTreeMap::new();
    for source in groups
        .iter()
        .flat_map(|group| group.members.iter())
        .flat_map(|member| member.tracked.iter())
    {
        let tracker = match source {
            TrackedSource::Script(name) => config.script(name).cloned().map(|mut script| {
                script.position = unplaced();
                TrackerConfig::Script(script)
            }),
            TrackedSource::File(name) => config.track_file(name).cloned().map(|mut file| {
                file.position = unplaced();
                TrackerConfig::File(file)
            }),
            TrackedSource::Process(name) => config.track_process(name).cloned().map(|mut p| {
                p.position = unplaced();
                TrackerConfig::Process(p)
            }),
            TrackedSource::Interface(_) | TrackedSource::Config(_) => None,
        };
        if let Some(tracker) = tracker {
            trackers.insert(source.clone(), tracker);
        }
    }
    let global = &config.global_defs;
    Ok(Plan {
        router_id: global
            .router_id
            .clone()
            .unwrap_or_else(|| hostname.to_owned()),
        groups,
        trackers,
        hooks: HooksContext {
            script_user: global.script_user.clone(),
            enable_script_security: global.enable_script_security,
            notification_email: global.notification_email.clone(),
            notification_email_from: global.notification_email_from.clone(),
            smtp_server: global.smtp_server.clone(),
            smtp_connect_timeout: global.smtp_connect_timeout,
        },
    })
}

fn plan_instance(
    config: &Config,
    instance: &config::model::VrrpInstance,
    interfaces: &dyn Fn(&str) -> Option<InterfaceInfo>,
) -> Result<InstancePlan, PlanError> {
    let name = instance.name.clone();
    let info = interfaces(&instance.interface).ok_or_else(|| PlanError::MissingInterface {
        instance: name.clone(),
        interface: instance.interface.clone(),
    })?;
    let family = match instance.family {
        config::model::AddressFamily::Ipv4 => AddressFamily::Ipv4,
        config::model::AddressFamily::Ipv6 => AddressFamily::Ipv6,
    };
    let configured_source = instance.unicast_src_ip.or(instance.mcast_src_ip);
    let source = match (configured_source, family) {
        (Some(source), _) => Some(source),
        (None, AddressFamily::Ipv4) => info.ipv4.first().copied().map(IpAddr::V4),
        (None, AddressFamily::Ipv6) => info.ipv6_link_local.map(IpAddr::V6),
    }
    .ok_or_else(|| PlanError::NoSourceAddress {
        instance: name.clone(),
        interface: instance.interface.clone(),
        family: match family {
            AddressFamily::Ipv4 => "IPv4",
            AddressFamily::Ipv6 => "IPv6 link-local",
        },
    })?;
    let group = match family {
        AddressFamily::Ipv4 => IpAddr::V4(config.global_defs.vrrp_mcast_group4),
        AddressFamily::Ipv6 => IpAddr::V6(config.global_defs.vrrp_mcast_group6),
    };
    let destinations = if instance.unicast_peer.is_empty() {
        vec![group]
    } else {
        instance
            .unicast_peer
            .iter()
            .map(|peer| peer.address)
            .collect()
    };

    let auth = match (&instance.authentication, instance.version) {
        (Some(auth), Version::V2) => match auth.auth_type {
            AuthType::Pass => Auth::simple_password(&auth.auth_pass),
            AuthType::Ah => return Err(PlanError::AuthAh { instance: name }),
        },
        _ => Auth::None,
    };
    let advertised = advertised_addresses(family, &instance.virtual_ipaddress);

    let mut tracked = Vec::new();
    let mut items = Vec::new();
    for reference in &instance.track_script {
        let script = config.script(&reference.name);
        items.push(TrackedItem {
            weight: reference
                .weight
                .unwrap_or_else(|| script.map_or(0, |script| script.weight)),
            reverse: reference.reverse || script.is_some_and(|script| script.weight_reverse),
            initially_up: !script.is_some_and(|script| script.init_fail),
        });
        tracked.push(TrackedSource::Script(reference.name.clone()));
    }
    for reference in &instance.track_interface {
        items.push(TrackedItem {
            weight: reference.weight.unwrap_or(0),
            reverse: reference.reverse,
            initially_up: interfaces(&reference.name).is_some_and(|info| info.up),
        });
        tracked.push(TrackedSource::Interface(reference.name.clone()));
    }
    for reference in &instance.track_file {
        let file = config.track_file(&reference.name);
        items.push(TrackedItem {
            weight: reference
                .weight
                .unwrap_or_else(|| file.map_or(0, |file| file.weight)),
            reverse: reference.reverse || file.is_some_and(|file| file.weight_reverse),
            initially_up: true,
        });
        tracked.push(TrackedSource::File(reference.name.clone()));
    }
    if instance.unicast_fault_no_peer && instance.unicast_without_peers {
        items.push(TrackedItem {
            weight: 0,
            reverse: false,
            initially_up: false,
        });
        tracked.push(TrackedSource::Config(NO_UNICAST_PEER.to_owned()));
    }
    for reference in &instance.track_process {
        let process = config.track_process(&reference.name);
        let weight = reference
            .weight
            .unwrap_or_else(|| process.map_or(0, |process| process.weight));
        let reverse = reference.reverse || process.is_some_and(|process| process.weight_reverse);
        items.push(process_item(weight, reverse));
        tracked.push(TrackedSource::Process(reference.name.clone()));
    }

    let mut election = InstanceConfig::new(instance.virtual_router_id, source);
    election.version = instance.version;
    election.priority = instance.priority;
    election.advert_interval_cs = (instance.advert_int.as_millis() / 10) as u32;
    election.initial_state = match instance.state {
        config::model::InitialState::Master => InitialState::Master,
        config::model::InitialState::Backup => InitialState::Backup,
    };
    election.preempt = instance.preempt;
    election.preempt_delay = instance.preempt_delay;
    election.accept = instance.accept;
    election.advert_on_lower_priority = !instance.lower_prio_no_advert;
    election.advert_before_yielding = instance.higher_prio_send_advert;
    election.tracked = items;
    // Validate now, so a bad value is a startup error and not a runtime one.
    crate::vrrp::election::Instance::new(&election).map_err(|error| PlanError::Election {
        instance: name.clone(),
        detail: error.to_string(),
    })?;

    let mut auth_pass = [0u8; 8];
    if let Auth::SimplePassword(password) = &auth {
        auth_pass = *password.as_bytes();
    }
    let filter = InstanceFilter {
        version: match instance.version {
            Version::V2 => 2,
            Version::V3 => 3,
        },
        auth_type: if matches!(auth, Auth::None) {
            AUTH_NONE
        } else {
            AUTH_PASS
        },
        advert_int_s: instance.advert_int.as_secs().min(255) as u8,
        flags: match (instance.unicast_peer.is_empty(), instance.check_unicast_src) {
            (true, _) => 0,
            (false, false) => INSTANCE_UNICAST,
            (false, true) => INSTANCE_UNICAST | INSTANCE_CHECK_UNICAST_SOURCE,
        },
        auth_pass,
        // The datapath assigns it (`Datapath::set_instance_filter`).
        last_seen_slot: 0,
    };
    let unicast_sources = if instance.check_unicast_src {
        instance
            .unicast_peer
            .iter()
            .map(|peer| UnicastPeerFilter {
                address: peer.address,
                min_ttl: peer.min_ttl.unwrap_or(0),
                max_ttl: peer.max_ttl.unwrap_or(255),
            })
            .collect()
    } else {
        Vec::new()
    };

    let mut vips = instance.virtual_ipaddress.clone();
    vips.extend(instance.virtual_ipaddress_excluded.iter().cloned());
    for vip in &mut vips {
        vip.position = unplaced();
    }
    let mut routes = instance.virtual_routes.clone();
    for route in &mut routes {
        route.position = unplaced();
    }
    Ok(InstancePlan {
        name: instance.name.clone(),
        interface: instance.interface.clone(),
        ifindex: info.ifindex,
        mac: info.mac,
        family,
        version: instance.version,
        election,
        source,
        destinations,
        group,
        checksum_form: if instance.v3_checksum_as_v2 {
            ChecksumForm::MessageOnly
        } else {
            ChecksumForm::WithPseudoHeader
        },
        old_unicast_checksum: instance.old_unicast_checksum
            == crate::config::model::UnicastChecksumCompat::Old,
        auth,
        advertised,
        vips,
        routes,
        tracked,
        notify: NotifyPlan {
            master: unplaced_notify(&instance.notify_master),
            backup: unplaced_notify(&instance.notify_backup),
            fault: unplaced_notify(&instance.notify_fault),
            stop: unplaced_notify(&instance.notify_stop),
            generic: unplaced_notify(&instance.notify),
            master_rx_lower_pri: unplaced_notify(&instance.notify_master_rx_lower_pri),
            smtp_alert: instance.smtp_alert || config.global_defs.smtp_alert,
        },
        garp: instance.garp.clone(),
        announce_spacing: announce_spacing(&config.global_defs, family),
        vmac: match (instance.use_vmac.is_some(), instance.vmac_xmit_base) {
            (false, _) => Vmac::Off,
            (true, false) => Vmac::On,
            (true, true) => Vmac::XmitBase,
        },
        filter,
        unicast_ttl: if instance.unicast_peer.is_empty() {
            None
        } else {
            instance.unicast_ttl
        },
        unicast_sources,
    })
}

/// keepalived applies a tracked process's weight times -1 under `reverse`
/// (a positive weight is subtracted while the quorum holds, a negative one
/// added while it does not); the election's `reverse` instead swaps which
/// state fails. The negated weight with `reverse` gives keepalived's
/// priorities exactly; at weight 0, `reverse` faults while the quorum holds
/// in both. Until the monitor's first report (which follows at once) the
/// process counts as up; the daemon fills in a scan of `/proc` before it
/// starts the instances (see `setup::initial_process_states`).
pub fn process_item(weight: i32, reverse: bool) -> TrackedItem {
    TrackedItem {
        weight: if reverse { -weight } else { weight },
        reverse,
        initially_up: true,
    }
}

/// What the process monitor looks for, from a `vrrp_track_process`.
pub fn process_spec(process: &config::model::TrackProcess) -> crate::tracking::ProcessSpec {
    use crate::{config::model::ParamMatch as Written, tracking::process::ParamMatch};
    let mut spec = crate::tracking::ProcessSpec::new(process.name.clone(), process.process.clone())
        .with_params(&process.params);
    spec.param_match = match process.param_match {
        Written::None => ParamMatch::None,
        Written::Exact => ParamMatch::Exact,
        Written::Partial => ParamMatch::Partial,
        Written::Initial => ParamMatch::Initial,
    };
    spec.full_command = process.full_command;
    spec.quorum = process.quorum;
    spec.quorum_max = process.quorum_max;
    spec.fork_delay = process.fork_delay;
    spec.terminate_delay = process.terminate_delay;
    spec
}

/// A plan says what runs, not where it was written: without positions, an
/// edit that only moves lines compares equal on reload.
fn unplaced() -> config::Position {
    config::Position::new(std::sync::Arc::from(""), 0, 0)
}

fn unplaced_notify(notify: &Option<Notify>) -> Option<Notify> {
    notify.clone().map(|mut notify| {
        notify.position = unplaced();
        notify
    })
}

/// keepalived keeps one pause for gratuitous ARPs and another for
/// unsolicited neighbour adverts; an instance announces one family only.
pub fn announce_spacing(
    global: &config::model::GlobalDefs,
    family: AddressFamily,
) -> std::time::Duration {
    match family {
        AddressFamily::Ipv4 => global.vrrp_garp_interval,
        AddressFamily::Ipv6 => global.vrrp_gna_interval,
    }
}

fn advertised_addresses(family: AddressFamily, vips: &[VirtualAddress]) -> VirtualAddresses {
    match family {
        AddressFamily::Ipv4 => VirtualAddresses::V4(
            vips.iter()
                .filter_map(|vip| match vip.address {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
                .collect(),
        ),
        AddressFamily::Ipv6 => VirtualAddresses::V6(
            vips.iter()
                .filter_map(|vip| match vip.address {
                    IpAddr::V6(v6) => Some(v6),
                    IpAddr::V4(_) => None,
                })
                .collect(),
        ),
    }
}

/// The interface the tests' configurations name: `eth1` (index 7,
/// 192.0.2.10, up, no IPv6), and no other.
#[cfg(test)]
pub(crate) fn test_eth1(name: &str) -> Option<InterfaceInfo> {
    (name == "eth1").then(|| InterfaceInfo {
        ifindex: 7,
        mac: [2, 0, 0, 0, 0, 1],
        ipv4: vec![std::net::Ipv4Addr::new(192, 0, 2, 10)],
        ipv6_link_local: None,
        up: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../config/testdata/keepalived.conf");

    use super::test_eth1 as eth1;

    fn seed() -> Config {
        crate::config::parse_str(SEED, "keepalived.conf")
            .expect("seed parses")
            .config
    }

    #[test]
    fn the_seed_plans_two_solo_v2_instances_with_pass_filters() {
        let plan = plan(&seed(), &eth1, "node1").expect("plan");
        assert_eq!(plan.router_id, "KEEPALIVED_TEST");
        let instances: Vec<_> = plan.instances().collect();
        assert_eq!(instances.len(), 2);
        let master1 = instances[0];
        assert_eq!(master1.name, "master1");
        assert_eq!(
            (
                master1.ifindex,
                master1.election.vrid,
                master1.election.priority
            ),
            (7, 56, 100)
        );
        assert_eq!(master1.source, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));
        assert_eq!(
            master1.destinations,
            vec![IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18))]
        );
        assert_eq!(master1.filter.version, 2);
        assert_eq!(master1.filter.auth_type, AUTH_PASS);
        assert_eq!(&master1.filter.auth_pass, b"1234\0\0\0\0");
        assert_eq!(master1.filter.advert_int_s, 1);
        assert_eq!(
            master1.tracked,
            vec![TrackedSource::Script("chk_alive".into())]
        );
        assert_eq!(master1.election.tracked[0].weight, 2);
        assert!(master1.notify.master.is_some() && master1.notify.stop.is_none());
        assert_eq!(instances[1].election.vrid, 58);
        assert_eq!(&instances[1].filter.auth_pass, b"4321\0\0\0\0");
    }

    #[test]
    fn v3_checksum_as_v2_selects_the_message_only_checksum() {
        let text = "vrrp_instance a {\n interface eth1\n virtual_router_id 9\n version 3\n v3_checksum_as_v2\n virtual_ipaddress { 203.0.113.1 }\n}\n";
        let loaded = crate::config::parse_str(text, "t.conf").expect("parses");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let plan = plan(&loaded.config, &eth1, "h").expect("plan");
        let instance = plan.instances().next().unwrap();
        assert_eq!(instance.checksum_form, ChecksumForm::MessageOnly);
        let default = plan_of_seed_first();
        assert_eq!(default.checksum_form, ChecksumForm::WithPseudoHeader);
    }

    fn plan_of_seed_first() -> InstancePlan {
        plan(&seed(), &eth1, "h")
            .unwrap()
            .instances()
            .next()
            .unwrap()
            .clone()
    }

    #[test]
    fn a_missing_interface_is_reported_per_instance() {
        let errors = plan(&seed(), &|_| None, "node1").expect_err("no interfaces");
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0]
                .to_string()
                .contains("interface \"eth1\" does not exist")
        );
    }

    #[test]
    fn an_interface_without_address_needs_a_configured_source() {
        let bare = |name: &str| {
            eth1(name).map(|mut info| {
                info.ipv4.clear();
                info
            })
        };
        let errors = plan(&seed(), &bare, "node1").expect_err("no source");
        assert!(
            errors[0].to_string().contains("mcast_src_ip"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn sync_groups_gather_their_members_and_unicast_peers_replace_the_group() {
        let text = "vrrp_sync_group G { group { a b } }\n\
            vrrp_instance a { interface eth1\n virtual_router_id 1\n virtual_ipaddress { 203.0.113.1 } }\n\
            vrrp_instance b { interface eth1\n virtual_router_id 2\n unicast_peer { 192.0.2.20 }\n virtual_ipaddress { 203.0.113.2 } }\n\
            vrrp_instance c { interface eth1\n virtual_router_id 3\n virtual_ipaddress { 203.0.113.3 } }\n";
        let config = crate::config::parse_str(text, "t.conf")
            .expect("parses")
            .config;
        let plan = plan(&config, &eth1, "host").expect("plan");
        assert_eq!(plan.router_id, "host");
        assert_eq!(plan.groups.len(), 2);
        assert_eq!(plan.groups[0].name.as_deref(), Some("G"));
        assert_eq!(plan.groups[0].members.len(), 2);
        assert_eq!(
            plan.groups[0].members[1].destinations,
            vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20))]
        );
        assert_eq!(plan.groups[1].members[0].name, "c");
    }
}
