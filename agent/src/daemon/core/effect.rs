//! What the election owner asks of the outside world, in order. Each effect
//! carries what its executor needs (a removed instance's effects outlive
//! it), and prints as one line so conformance cases read as a transcript.

use std::{fmt, net::IpAddr, sync::Arc};

use agent_common::{
    AUTH_PASS, FAMILY_IPV4, INSTANCE_CHECK_UNICAST_SOURCE, INSTANCE_UNICAST, InstanceFilter,
    InstanceKey,
};

use crate::{
    config::model::{VirtualAddress, VirtualRoute},
    datapath::{VipState, Vmac},
    notify::NotifyState,
    vrrp::{
        AdvertInterval,
        election::{Reason, State},
    },
};

use super::super::plan::{InstancePlan, NotifyPlan, TrackedSource, TrackerConfig};

/// Names one instance for its whole life, across reloads that keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u32);

/// Names one sync group for its whole life, across reloads that keep it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u32);

/// Whose notify hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookOwner {
    Instance(MemberId),
    Group(GroupId),
}

#[derive(Debug, Clone)]
pub enum Effect {
    /// Configured addresses a crashed earlier run may have left behind.
    RemoveStale {
        plan: Arc<InstancePlan>,
    },
    /// The instance resumes as master: the addresses and routes the
    /// previous daemon left are this one's to release.
    Claim {
        plan: Arc<InstancePlan>,
    },
    /// What XDP accepts for this instance.
    Filter {
        key: InstanceKey,
        filter: InstanceFilter,
    },
    RemoveFilter {
        key: InstanceKey,
    },
    /// The unicast peers XDP accepts adverts from for this instance
    /// (`check_unicast_src`); empty removes them.
    UnicastSources {
        key: InstanceKey,
        sources: Vec<crate::datapath::UnicastPeerFilter>,
    },
    Vip {
        address: IpAddr,
        /// The instance whose heartbeat fences the address.
        instance: InstanceKey,
        state: VipState,
        /// Whether the address answers with the instance's virtual MAC.
        vmac: Vmac,
    },
    /// No instance configures the address any more.
    ForgetVip {
        address: IpAddr,
    },
    AddAddresses {
        plan: Arc<InstancePlan>,
        addresses: Vec<VirtualAddress>,
        routes: Vec<VirtualRoute>,
    },
    RemoveAddresses {
        plan: Arc<InstancePlan>,
        addresses: Vec<VirtualAddress>,
        routes: Vec<VirtualRoute>,
    },
    SendAdvert {
        member: MemberId,
        plan: Arc<InstancePlan>,
        priority: u8,
        interval: AdvertInterval,
    },
    /// An advert with our priority as this master yields
    /// (`higher_prio_send_advert`): sent, but no heartbeat refreshed.
    SendYieldingAdvert {
        member: MemberId,
        plan: Arc<InstancePlan>,
        priority: u8,
        interval: AdvertInterval,
    },
    /// The `garp_lower_prio_repeat` burst for these addresses now, and
    /// another after `garp_lower_prio_delay`; replaces a previous one of the
    /// member still waiting for its second burst.
    AnnounceLowerPriority {
        member: MemberId,
        plan: Arc<InstancePlan>,
        addresses: Vec<IpAddr>,
    },
    /// A gratuitous ARP / unsolicited NA burst for these addresses.
    Announce {
        member: MemberId,
        plan: Arc<InstancePlan>,
        addresses: Vec<IpAddr>,
    },
    StopAnnounce {
        member: MemberId,
        name: String,
    },
    /// Forget the kernel's record of this router's peer, so a returning
    /// peer whose adverts look as before still raises an event.
    ForgetPeer {
        key: InstanceKey,
    },
    StateChanged {
        member: MemberId,
        /// The router whose heartbeat goes when it leaves master.
        key: InstanceKey,
        name: String,
        from: State,
        to: State,
        reason: Reason,
        priority: u8,
    },
    PriorityChanged {
        name: String,
        from: u8,
        to: u8,
    },
    /// Build (or rebuild) the notify queue of an instance or group.
    Hooks {
        owner: HookOwner,
        name: String,
        notify: Box<NotifyPlan>,
    },
    /// Drain and drop a notify queue.
    DropHooks {
        owner: HookOwner,
        name: String,
    },
    Notify {
        owner: HookOwner,
        name: String,
        state: NotifyState,
        priority: u8,
    },
    /// This master heard a lower-priority advert: run its
    /// `notify_master_rx_lower_pri`.
    MasterRxLowerPri {
        owner: HookOwner,
        name: String,
    },
    StartTracker {
        source: TrackedSource,
        tracker: Box<TrackerConfig>,
    },
    StopTracker {
        source: TrackedSource,
    },
}

fn key_text(key: &InstanceKey) -> String {
    let family = if key.family == FAMILY_IPV4 { 4 } else { 6 };
    format!("if{}/{}/v{family}", key.ifindex, key.vrid)
}

fn addresses_text(addresses: &[VirtualAddress], routes: &[VirtualRoute]) -> String {
    let mut parts: Vec<String> = addresses
        .iter()
        .map(|vip| format!("{}/{}", vip.address, vip.prefix_len))
        .collect();
    parts.extend(
        routes
            .iter()
            .map(|route| format!("route:{}/{}", route.to, route.prefix_len)),
    );
    parts.join(" ")
}

fn source_text(source: &TrackedSource) -> String {
    match source {
        TrackedSource::Script(name) => format!("script {name}"),
        TrackedSource::Interface(name) => format!("interface {name}"),
        TrackedSource::File(name) => format!("file {name}"),
        TrackedSource::Config(name) => format!("config {name}"),
        TrackedSource::Process(name) => format!("process {name}"),
    }
}

fn owner_text(owner: &HookOwner, name: &str) -> String {
    match owner {
        HookOwner::Instance(_) => format!("instance {name}"),
        HookOwner::Group(_) => format!("group {name}"),
    }
}

fn state_text(state: State) -> &'static str {
    super::super::runtime::state_name(state)
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::RemoveStale { plan } => {
                let text = addresses_text(&plan.vips, &[]);
                write!(f, "remove-stale {} {text}", plan.name)
            }
            Effect::Claim { plan } => write!(f, "claim {}", plan.name),
            Effect::Filter { key, filter } => {
                let auth = if filter.auth_type == AUTH_PASS {
                    let end = filter
                        .auth_pass
                        .iter()
                        .position(|byte| *byte == 0)
                        .unwrap_or(filter.auth_pass.len());
                    format!("pass:{}", String::from_utf8_lossy(&filter.auth_pass[..end]))
                } else {
                    "none".to_owned()
                };
                write!(
                    f,
                    "filter {} v{} auth={auth} int={}s",
                    key_text(key),
                    filter.version,
                    filter.advert_int_s
                )?;
                if filter.flags & INSTANCE_UNICAST != 0 {
                    write!(f, " unicast")?;
                }
                if filter.flags & INSTANCE_CHECK_UNICAST_SOURCE != 0 {
                    write!(f, " check-source")?;
                }
                Ok(())
            }
            Effect::RemoveFilter { key } => write!(f, "filter-remove {}", key_text(key)),
            Effect::UnicastSources { key, sources } => {
                write!(f, "unicast-sources {}", key_text(key))?;
                if sources.is_empty() {
                    write!(f, " none")?;
                }
                for source in sources {
                    write!(
                        f,
                        " {} ttl={}-{}",
                        source.address, source.min_ttl, source.max_ttl
                    )?;
                }
                Ok(())
            }
            Effect::Vip { address, state, .. } => {
                let text = match state {
                    VipState::NotOwned => "not-owned",
                    VipState::Owned => "owned",
                    VipState::OwnedNoAccept => "owned no-accept",
                };
                write!(f, "vip {address} {text}")
            }
            Effect::ForgetVip { address } => write!(f, "vip-forget {address}"),
            Effect::AddAddresses {
                plan,
                addresses,
                routes,
            } => write!(
                f,
                "addr-add {} {}",
                plan.name,
                addresses_text(addresses, routes)
            ),
            Effect::RemoveAddresses {
                plan,
                addresses,
                routes,
            } => write!(
                f,
                "addr-remove {} {}",
                plan.name,
                addresses_text(addresses, routes)
            ),
            Effect::SendAdvert {
                plan,
                priority,
                interval,
                ..
            } => write!(
                f,
                "advert {} prio={priority} int={}cs",
                plan.name,
                interval.centiseconds()
            ),
            Effect::SendYieldingAdvert {
                plan,
                priority,
                interval,
                ..
            } => write!(
                f,
                "advert {} prio={priority} int={}cs yielding",
                plan.name,
                interval.centiseconds()
            ),
            Effect::AnnounceLowerPriority {
                plan, addresses, ..
            } => {
                let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "announce-lower-prio {} repeat={} delay={}s {}",
                    plan.name,
                    plan.garp.lower_prio_repeat,
                    plan.garp.lower_prio_delay.as_secs(),
                    list.join(" ")
                )
            }
            Effect::Announce {
                plan, addresses, ..
            } => {
                let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                write!(f, "announce {} {}", plan.name, list.join(" "))
            }
            Effect::StopAnnounce { name, .. } => write!(f, "announce-stop {name}"),
            Effect::ForgetPeer { key } => write!(f, "forget-peer {}", key_text(key)),
            Effect::StateChanged {
                name,
                from,
                to,
                reason,
                priority,
                ..
            } => write!(
                f,
                "state {name} {}->{} {reason:?} prio={priority}",
                state_text(*from),
                state_text(*to)
            ),
            Effect::PriorityChanged { name, from, to } => {
                write!(f, "priority {name} {from}->{to}")
            }
            Effect::Hooks { owner, name, .. } => write!(f, "hooks {}", owner_text(owner, name)),
            Effect::DropHooks { owner, name } => {
                write!(f, "hooks-drop {}", owner_text(owner, name))
            }
            Effect::MasterRxLowerPri { owner, name } => {
                write!(f, "notify {} MASTER_RX_LOWER_PRI", owner_text(owner, name))
            }
            Effect::Notify {
                owner,
                name,
                state,
                priority,
            } => write!(
                f,
                "notify {} {} {priority}",
                owner_text(owner, name),
                state.keyword()
            ),
            Effect::StartTracker { source, .. } => {
                write!(f, "tracker-start {}", source_text(source))
            }
            Effect::StopTracker { source } => write!(f, "tracker-stop {}", source_text(source)),
        }
    }
}
