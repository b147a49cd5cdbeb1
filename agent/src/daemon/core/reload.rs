//! A reload as the difference between the running plan and a new one.
//!
//! Groups whose members keep their identity (interface, VRID, family,
//! version, in order, under the same sync group name) keep their election
//! state and are reconfigured in place: a master that stays master only
//! sees the addresses, routes, adverts and guard entries that actually
//! changed. Other groups are stopped cleanly (priority 0, addresses
//! removed, notify_stop) before new ones start, so an address moving
//! between instances is released before it is claimed.

use std::{
    collections::{BTreeSet, HashSet},
    net::IpAddr,
    sync::Arc,
};

use agent_common::InstanceKey;
use tracing::warn;

use super::{Core, Effect, Group, HookOwner, Member, apply};
use crate::{
    daemon::{
        adverts::AdvertShape,
        plan::{GroupPlan, InstancePlan, Plan, TrackedSource, TrackerConfig},
    },
    datapath::VipState,
    vrrp::election::{Instance, State, Timestamp},
};

/// What the new plan holds, to decide what a stopped instance releases.
struct Kept {
    keys: HashSet<InstanceKey>,
    vips: HashSet<IpAddr>,
}

impl Core {
    /// Applies `plan` as a transaction's commit: the plan was fully
    /// validated before, so nothing here can refuse.
    pub fn reload(&mut self, plan: &Plan, now: Timestamp) -> Vec<Effect> {
        let mut out = Vec::new();
        let hooks_changed = self.hooks != plan.hooks;
        let kept = Kept {
            keys: plan.instances().map(InstancePlan::datapath_key).collect(),
            vips: plan
                .instances()
                .flat_map(|instance| instance.vips.iter().map(|vip| vip.address))
                .collect(),
        };

        let mut running: Vec<Option<Group>> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(Some)
            .collect();
        let continued: Vec<Option<Group>> = plan
            .groups
            .iter()
            .map(|group_plan| {
                let position = running.iter().position(|group| {
                    group
                        .as_ref()
                        .is_some_and(|group| continues(group, group_plan))
                })?;
                running[position].take()
            })
            .collect();

        for group in running.into_iter().flatten() {
            stop_group(group, now, &kept, &mut out);
        }
        for (group_plan, group) in plan.groups.iter().zip(continued) {
            let group = match group {
                Some(mut group) => {
                    update_group(&mut group, group_plan, hooks_changed, now, &mut out);
                    Some(group)
                }
                None => self.start_group(group_plan, now, &Default::default(), &mut out),
            };
            self.groups.extend(group);
        }
        self.update_trackers(plan, hooks_changed, &mut out);
        self.hooks = plan.hooks.clone();
        self.reindex();
        out
    }

    fn update_trackers(&mut self, plan: &Plan, hooks_changed: bool, out: &mut Vec<Effect>) {
        let restart = |source: &TrackedSource, old: &TrackerConfig| match plan.trackers.get(source)
        {
            None => true,
            Some(new) => new != old || (hooks_changed && matches!(new, TrackerConfig::Script(_))),
        };
        for (source, old) in &self.trackers {
            if restart(source, old) {
                out.push(Effect::StopTracker {
                    source: source.clone(),
                });
            }
        }
        for (source, tracker) in &plan.trackers {
            if self
                .trackers
                .get(source)
                .is_none_or(|old| restart(source, old))
            {
                out.push(Effect::StartTracker {
                    source: source.clone(),
                    tracker: Box::new(tracker.clone()),
                });
            }
        }
        self.trackers = plan.trackers.clone();
    }
}

/// Whether a running group can become `plan` keeping its state.
fn continues(group: &Group, plan: &GroupPlan) -> bool {
    group.name == plan.name
        && group.members.len() == plan.members.len()
        && group
            .members
            .iter()
            .zip(&plan.members)
            .all(|(member, new)| {
                member.plan.identity() == new.identity() && member.plan.version == new.version
            })
}

fn stop_group(mut group: Group, now: Timestamp, kept: &Kept, out: &mut Vec<Effect>) {
    let actions = group.sync.shutdown(now);
    apply(&mut group, actions, out);
    for member in &group.members {
        let key = member.plan.datapath_key();
        if !kept.keys.contains(&key) {
            out.push(Effect::RemoveFilter { key });
        }
        for vip in &member.plan.vips {
            if !kept.vips.contains(&vip.address) {
                out.push(Effect::ForgetVip {
                    address: vip.address,
                });
            }
        }
        out.push(Effect::DropHooks {
            owner: HookOwner::Instance(member.id),
            name: member.plan.name.clone(),
        });
    }
    if let Some(name) = &group.name {
        out.push(Effect::DropHooks {
            owner: HookOwner::Group(group.id),
            name: name.clone(),
        });
    }
}

fn update_group(
    group: &mut Group,
    plan: &GroupPlan,
    hooks_changed: bool,
    now: Timestamp,
    out: &mut Vec<Effect>,
) {
    for (index, new) in plan.members.iter().enumerate() {
        update_member(group, index, new, hooks_changed, now, out);
    }
    if let Some(name) = &group.name
        && (group.notify != plan.notify || hooks_changed)
    {
        out.push(Effect::Hooks {
            owner: HookOwner::Group(group.id),
            name: name.clone(),
            notify: Box::new(plan.notify.clone()),
        });
    }
    group.notify = plan.notify.clone();
}

fn update_member(
    group: &mut Group,
    index: usize,
    new: &InstancePlan,
    hooks_changed: bool,
    now: Timestamp,
    out: &mut Vec<Effect>,
) {
    let old = Arc::clone(&group.members[index].plan);
    let state_of = |group: &Group| group.sync.member(index).map(Instance::state);
    let was_master = state_of(group) == Some(State::Master);

    // Tracked items the old plan had keep their live status.
    let mut election = new.election.clone();
    let mut tracked_up = Vec::with_capacity(new.tracked.len());
    for (item, source) in election.tracked.iter_mut().zip(&new.tracked) {
        if let Some(position) = old.tracked.iter().position(|tracked| tracked == source) {
            item.initially_up = group.members[index].tracked_up[position];
        }
        tracked_up.push(item.initially_up);
    }

    let key = new.datapath_key();
    // The interface came back under a new ifindex: what the kernel holds
    // under the old key (filter, peer record, guard entries) belongs to an
    // interface that no longer exists.
    let rekeyed = old.datapath_key() != key;
    if rekeyed {
        out.push(Effect::RemoveFilter {
            key: old.datapath_key(),
        });
        out.push(Effect::ForgetPeer {
            key: old.datapath_key(),
        });
    }
    // Peers are in place before a filter that checks them, and leave
    // after a filter that stops checking them.
    let sources_changed = rekeyed || old.unicast_sources != new.unicast_sources;
    let sources = || Effect::UnicastSources {
        key,
        sources: new.unicast_sources.clone(),
    };
    if sources_changed && !new.unicast_sources.is_empty() {
        out.push(sources());
    }
    if old.datapath_key() != key || old.filter != new.filter {
        out.push(Effect::Filter {
            key,
            filter: new.filter,
        });
    }
    if sources_changed && new.unicast_sources.is_empty() && !rekeyed {
        out.push(sources());
    }
    if old.notify != new.notify || old.name != new.name || hooks_changed {
        out.push(Effect::Hooks {
            owner: HookOwner::Instance(group.members[index].id),
            name: new.name.clone(),
            notify: Box::new(new.notify.clone()),
        });
    }

    // Transitions the new settings cause act on the old plan's addresses,
    // the ones actually on the interface.
    match group.sync.reconfigure(index, &election, now) {
        Ok(actions) => apply(group, actions, out),
        Err(error) => warn!(instance = %new.name, %error, "reconfiguring the election failed"),
    }
    let new = Arc::new(new.clone());
    group.members[index].set_plan(Arc::clone(&new));
    group.members[index].tracked_up = tracked_up;

    let instance = group.sync.member(index);
    let is_master = instance.map(Instance::state) == Some(State::Master);
    let accepts = instance.is_some_and(Instance::accepts_vip_traffic);
    let member = &group.members[index];
    if is_master {
        master_difference(member, &old, &new, accepts, was_master, out);
        if AdvertShape::of(&old) != AdvertShape::of(&new)
            && let Some(instance) = instance
        {
            // Peers that already reloaded expect the new form: say it now.
            out.push(Effect::SendAdvert {
                member: member.id,
                plan: Arc::clone(&new),
                priority: instance.effective_priority(),
                interval: instance.advert_interval(),
            });
        }
    } else {
        let old_vips: BTreeSet<IpAddr> = old.vips.iter().map(|vip| vip.address).collect();
        let new_vips: BTreeSet<IpAddr> = new.vips.iter().map(|vip| vip.address).collect();
        for address in old_vips.difference(&new_vips) {
            out.push(Effect::ForgetVip { address: *address });
        }
        let guarded = if rekeyed {
            new_vips.iter().collect::<Vec<_>>()
        } else {
            new_vips.difference(&old_vips).collect()
        };
        for address in guarded {
            out.push(Effect::Vip {
                address: *address,
                instance: new.datapath_key(),
                state: VipState::NotOwned,
                vmac: new.vmac,
            });
        }
    }
}

/// A master's addresses, routes and guard entries move from `old` to `new`
/// touching only what differs.
fn master_difference(
    member: &Member,
    old: &InstancePlan,
    new: &Arc<InstancePlan>,
    accepts: bool,
    was_master: bool,
    out: &mut Vec<Effect>,
) {
    let removed: Vec<_> = old
        .vips
        .iter()
        .filter(|vip| !new.vips.contains(vip))
        .cloned()
        .collect();
    let added: Vec<_> = new
        .vips
        .iter()
        .filter(|vip| !old.vips.contains(vip))
        .cloned()
        .collect();
    let removed_routes: Vec<_> = old
        .routes
        .iter()
        .filter(|route| !new.routes.contains(route))
        .cloned()
        .collect();
    let added_routes: Vec<_> = new
        .routes
        .iter()
        .filter(|route| !old.routes.contains(route))
        .cloned()
        .collect();
    let owned = VipState::master(accepts);

    if !removed.is_empty() || !removed_routes.is_empty() {
        for vip in &removed {
            if !new.vips.iter().any(|kept| kept.address == vip.address) {
                out.push(Effect::ForgetVip {
                    address: vip.address,
                });
            }
        }
        out.push(Effect::RemoveAddresses {
            plan: Arc::new(old.clone()),
            addresses: removed,
            routes: removed_routes,
        });
    }
    // Accept mode or the virtual MAC may have changed for the addresses
    // that stay.
    let vmac_changed = old.vmac != new.vmac;
    if was_master && (old.election.accept != new.election.accept || vmac_changed) {
        for vip in new.vips.iter().filter(|vip| !added.contains(vip)) {
            out.push(Effect::Vip {
                address: vip.address,
                instance: new.datapath_key(),
                state: owned,
                vmac: new.vmac,
            });
        }
    }
    if !added.is_empty() || !added_routes.is_empty() {
        for vip in &added {
            out.push(Effect::Vip {
                address: vip.address,
                instance: new.datapath_key(),
                state: owned,
                vmac: new.vmac,
            });
        }
        // An instance that became master in this reload announced its
        // former addresses already; this burst replaces that one, so it
        // names them all.
        let announced = if was_master { &added } else { &new.vips };
        let announce: Vec<IpAddr> = announced.iter().map(|vip| vip.address).collect();
        out.push(Effect::AddAddresses {
            plan: Arc::clone(new),
            addresses: added,
            routes: added_routes,
        });
        // A new virtual MAC announces every address below, after the add.
        let full_burst_follows = was_master && vmac_changed;
        if !announce.is_empty() && !full_burst_follows {
            out.push(Effect::Announce {
                member: member.id,
                plan: Arc::clone(new),
                addresses: announce,
            });
        }
    }
    if was_master && vmac_changed && !new.vips.is_empty() {
        // Neighbours learn the new MAC now, not when their entries expire;
        // this burst replaces the one for added addresses with all of them.
        out.push(Effect::Announce {
            member: member.id,
            plan: Arc::clone(new),
            addresses: new.vips.iter().map(|vip| vip.address).collect(),
        });
    }
}
