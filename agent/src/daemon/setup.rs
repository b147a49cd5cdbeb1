//! Building what the runtime needs from a plan: datapath attachments and
//! filters, sockets, trackers, notify queues; and doing it again on reload.

use std::collections::{HashMap, HashSet};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    advert_socket::AdvertSocket,
    config::Config,
    datapath::{InterfaceMode, VipState},
    frame_socket::FrameSocket,
    netlink::{self, Interfaces},
    notify::{MailHook, Mailer, NotifyQueue, QueueLimits, Scope},
    tracking::{
        FileEvent, InitFile, ScriptEvent, TrackFileSpec, file::DEFAULT_POLL_INTERVAL,
        spawn_file_tracker, spawn_script_tracker,
    },
};

use super::{
    DaemonError, Event, hooks,
    plan::{GroupPlan, InstancePlan, InterfaceInfo, NotifyPlan, Plan, TrackedSource},
    runtime::{MemberParts, Runtime},
    script_up,
};

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Facts about every interface the configuration names.
pub async fn interface_facts(
    handle: &netlink::Handle,
    config: &Config,
) -> Result<HashMap<String, InterfaceInfo>, DaemonError> {
    let interfaces = Interfaces::new(handle.clone());
    let mut names: HashSet<&str> = HashSet::new();
    for instance in &config.vrrp_instances {
        names.insert(&instance.interface);
        for tracked in &instance.track_interface {
            names.insert(&tracked.name);
        }
    }
    let mut facts = HashMap::new();
    for name in names {
        let Ok(info) = interfaces.by_name(name).await else {
            continue;
        };
        let addresses = interfaces.addresses(info.index).await?;
        let mut ipv4: Vec<std::net::Ipv4Addr> = Vec::new();
        if let Some(primary) = netlink::primary_ipv4(&addresses, &[]) {
            ipv4.push(primary);
        }
        facts.insert(
            name.to_owned(),
            InterfaceInfo {
                ifindex: info.index,
                mac: info.mac().unwrap_or_default(),
                ipv4,
                ipv6_link_local: netlink::ipv6_link_local(&addresses),
                up: info.is_up(),
            },
        );
    }
    Ok(facts)
}

/// Long-lived helpers owned outside the runtime: trackers and the mailer.
pub struct Resources {
    events: mpsc::Sender<Event>,
    mailer: Option<Mailer>,
    trackers: CancellationToken,
    attached: HashSet<String>,
}

impl Resources {
    pub fn new(events: mpsc::Sender<Event>, mailer: Option<Mailer>) -> Self {
        Self {
            events,
            mailer,
            trackers: CancellationToken::new(),
            attached: HashSet::new(),
        }
    }

    /// Everything for a fresh start.
    pub async fn install(
        &mut self,
        runtime: &mut Runtime,
        config: &Config,
        plan: &Plan,
        handle: &netlink::Handle,
        pass_adverts: bool,
    ) -> Result<(), DaemonError> {
        self.prepare_datapath(runtime, plan, handle, pass_adverts)
            .await?;
        runtime.remove_stale_addresses(plan);
        self.start_trackers(config, plan)?;
        for group in &plan.groups {
            self.start_group(runtime, config, group)?;
        }
        Ok(())
    }

    /// Attachments, filters, own addresses and sockets; idempotent, so a
    /// reload only adds what is new.
    async fn prepare_datapath(
        &mut self,
        runtime: &mut Runtime,
        plan: &Plan,
        handle: &netlink::Handle,
        pass_adverts: bool,
    ) -> Result<(), DaemonError> {
        let interfaces = Interfaces::new(handle.clone());
        for instance in plan.instances() {
            if self.attached.insert(instance.interface.clone()) {
                runtime.datapath.attach(
                    &instance.interface,
                    InterfaceMode::Enforce {
                        pass_consumed: pass_adverts,
                    },
                )?;
                runtime.datapath.attach_vip_guard(&instance.interface)?;
                for address in interfaces.addresses(instance.ifindex).await? {
                    runtime.datapath.add_local_address(address.address)?;
                }
            }
            runtime
                .datapath
                .set_instance_filter(instance.datapath_key(), instance.filter)?;
            for vip in &instance.vips {
                runtime
                    .datapath
                    .set_vip_state(vip.address, VipState::NotOwned)?;
            }
            if !runtime.has_socket(instance.ifindex, instance.source) {
                let socket = AdvertSocket::open(
                    &instance.interface,
                    instance.ifindex,
                    instance.source,
                    instance.group,
                )
                .map_err(|error| DaemonError::Setup(error.to_string()))?;
                runtime.add_socket(instance.ifindex, instance.source, socket);
            }
            if !runtime.has_frame_socket(instance.ifindex) {
                let socket = FrameSocket::open(instance.ifindex)
                    .map_err(|error| DaemonError::Setup(error.to_string()))?;
                runtime.add_frame_socket(instance.ifindex, socket);
            }
        }
        Ok(())
    }

    /// One tracker per script or file that some instance tracks; scripts no
    /// instance tracks are not run, as keepalived does.
    fn start_trackers(&mut self, config: &Config, plan: &Plan) -> Result<(), DaemonError> {
        let mut scripts = HashSet::new();
        let mut files = HashSet::new();
        for instance in plan.instances() {
            for tracked in &instance.tracked {
                match tracked {
                    TrackedSource::Script(name) => {
                        scripts.insert(name.clone());
                    }
                    TrackedSource::File(name) => {
                        files.insert(name.clone());
                    }
                    TrackedSource::Interface(_) => {}
                }
            }
        }
        let (script_tx, mut script_rx) = mpsc::channel::<ScriptEvent>(64);
        for name in scripts {
            let Some(script) = config.script(&name) else {
                continue;
            };
            let spec = hooks::script_spec(script, &config.global_defs)
                .map_err(|error| DaemonError::Setup(error.to_string()))?;
            spawn_script_tracker(spec, script_tx.clone(), self.trackers.child_token());
        }
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(event) = script_rx.recv().await {
                if let Some(up) = script_up(event.status) {
                    info!(script = %event.name, up, "tracked script status");
                    let _ = events
                        .send(Event::Tracked(TrackedSource::Script(event.name), up))
                        .await;
                }
            }
        });

        let (file_tx, mut file_rx) = mpsc::channel::<FileEvent>(64);
        for name in files {
            let Some(file) = config.track_file(&name) else {
                continue;
            };
            let mut spec = TrackFileSpec::new(name.clone(), file.file.clone());
            spec.weight = file.weight;
            spec.reverse = file.weight_reverse;
            spec.init = file.init_file.as_ref().map(|init| InitFile {
                value: init.value,
                overwrite: init.overwrite,
            });
            spawn_file_tracker(
                spec,
                DEFAULT_POLL_INTERVAL,
                file_tx.clone(),
                self.trackers.child_token(),
            )
            .map_err(|error| DaemonError::Setup(error.to_string()))?;
        }
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(event) = file_rx.recv().await {
                // The election tracks up/down: a file reading 0 is healthy.
                let up = event.value == 0;
                let _ = events
                    .send(Event::Tracked(TrackedSource::File(event.name), up))
                    .await;
            }
        });
        Ok(())
    }

    pub fn stop_trackers(&mut self) {
        self.trackers.cancel();
    }

    fn notify_queue(
        &self,
        scope: Scope,
        name: &str,
        hooks_plan: &NotifyPlan,
        config: &Config,
    ) -> Result<NotifyQueue, DaemonError> {
        let target = hooks::notify_target(scope, name, hooks_plan, &config.global_defs)
            .map_err(|error| DaemonError::Setup(error.to_string()))?;
        let mail = self
            .mailer
            .as_ref()
            .filter(|_| hooks_plan.smtp_alert)
            .map(|mailer| MailHook {
                mailer: mailer.clone(),
                router_id: config
                    .global_defs
                    .router_id
                    .clone()
                    .unwrap_or_else(hostname),
                gate: crate::notify::AlertGate::new(true, false),
            });
        Ok(NotifyQueue::spawn(target, QueueLimits::default(), mail))
    }

    fn start_group(
        &self,
        runtime: &mut Runtime,
        config: &Config,
        group: &GroupPlan,
    ) -> Result<(), DaemonError> {
        let members = group
            .members
            .iter()
            .map(|member| {
                Ok(MemberParts {
                    notify: self.notify_queue(
                        Scope::Instance,
                        &member.name,
                        &member.notify,
                        config,
                    )?,
                    plan: member.clone(),
                })
            })
            .collect::<Result<Vec<_>, DaemonError>>()?;
        let group_notify = match &group.name {
            Some(name) => Some(self.notify_queue(Scope::Group, name, &group.notify, config)?),
            None => None,
        };
        runtime
            .start_group(group, members, group_notify)
            .map_err(DaemonError::Plan)
    }

    /// Applies a new plan: groups with the same members (by identity) and
    /// the same election settings apart from base priority keep their state.
    pub async fn reload(
        &mut self,
        runtime: &mut Runtime,
        config: &Config,
        plan: &Plan,
        handle: &netlink::Handle,
        pass_adverts: bool,
    ) -> Result<(), DaemonError> {
        self.prepare_datapath(runtime, plan, handle, pass_adverts)
            .await?;
        self.trackers.cancel();
        self.trackers = CancellationToken::new();
        self.start_trackers(config, plan)?;

        let mut kept = vec![false; runtime.groups.len()];
        let mut fresh = Vec::new();
        for group in &plan.groups {
            match matching_group(runtime, group) {
                Some(index) => {
                    kept[index] = true;
                    update_group(runtime, index, group);
                }
                None => fresh.push(group),
            }
        }
        for index in (0..kept.len()).rev() {
            if !kept[index] {
                let queues = runtime.stop_group(index);
                tokio::spawn(async move {
                    for queue in queues {
                        queue.shutdown().await;
                    }
                });
            }
        }
        for group in fresh {
            self.start_group(runtime, config, group)?;
        }
        runtime.reindex();
        Ok(())
    }
}

/// A running group this plan's group can continue: same members, in the
/// same order, with election settings equal up to the base priority.
fn matching_group(runtime: &Runtime, group: &GroupPlan) -> Option<usize> {
    runtime.groups.iter().position(|running| {
        running.members.len() == group.members.len()
            && running
                .members
                .iter()
                .zip(&group.members)
                .all(|(old, new)| same_election(&old.plan, new))
    })
}

fn same_election(old: &InstancePlan, new: &InstancePlan) -> bool {
    let mut old_election = old.election.clone();
    old_election.priority = new.election.priority;
    old.identity() == new.identity()
        && old.source == new.source
        && old.tracked == new.tracked
        && old_election == new.election
}

fn update_group(runtime: &mut Runtime, index: usize, group: &GroupPlan) {
    for (member_index, new_plan) in group.members.iter().enumerate() {
        let old_priority = runtime.groups[index].members[member_index]
            .plan
            .election
            .priority;
        runtime.groups[index].members[member_index].plan = new_plan.clone();
        if old_priority != new_plan.election.priority {
            match std::num::NonZeroU8::new(new_plan.election.priority) {
                Some(priority) => runtime.input(
                    index,
                    member_index,
                    crate::vrrp::election::Input::SetBasePriority(priority),
                    super::runtime::now(),
                ),
                None => warn!(instance = %new_plan.name, "priority 0 is not a valid base priority"),
            }
        }
    }
}
