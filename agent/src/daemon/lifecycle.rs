//! Interfaces that vanish, come back (perhaps under a new ifindex: a VLAN
//! or bond rebuilt, a driver reloaded) and change addresses under a
//! running daemon.
//!
//! While a VRRP interface is down or missing its instances are FAULT, as
//! keepalived's are, so notify_fault runs and nothing claims mastership
//! over a link that cannot carry it. A missing interface's programs, pins,
//! kernel settings and sockets are released at once. When it is back, or
//! when addresses change, the interfaces are re-read off the election task
//! and the configuration re-planned with what the kernel now says; the
//! commit is a reload of that plan (instances keep their state, the
//! election core moves filters, guard entries and peer records to the new
//! ifindex, a new source address re-shapes the adverts), after the
//! programs and sockets are attached to the current interface. Only then
//! does the election hear that the interface is up.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    net::IpAddr,
    sync::Arc,
};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::{
    config::Config,
    netlink::{self, AddressChange, LinkEvent, LinkState},
};

use super::{
    DaemonError,
    plan::{self, Plan, PlanError},
    runtime::Runtime,
    setup::{self, AddressesByIndex},
};

/// The interfaces as re-read, and the plan they give.
pub struct Refreshed {
    generation: u64,
    outcome: Result<Gathered, Unplanned>,
}

/// Why the interfaces as read give no plan.
struct Unplanned {
    error: DaemonError,
    /// VRRP interfaces that exist but have no address to advertise from.
    unaddressed: BTreeSet<String>,
}

struct Gathered {
    plan: Plan,
    addresses: AddressesByIndex,
    /// The node's own addresses on the VRRP interfaces (no virtual ones).
    local: HashSet<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Idle,
    Running,
    /// Something changed again while reading: read once more after.
    RunningThenAgain,
}

pub struct Lifecycle {
    config: Arc<Config>,
    /// Bumped when a reload replaces `config`: a re-read begun before it
    /// plans the old file and is dropped.
    generation: u64,
    hostname: String,
    handle: netlink::Handle,
    pass_adverts: bool,
    /// VRRP interfaces that came up; the election hears it once the
    /// datapath and sockets are on them.
    pending_up: BTreeSet<String>,
    /// Last reported up/down per VRRP interface.
    up: HashMap<String, bool>,
    refresh: RefreshState,
    results: mpsc::Sender<Refreshed>,
}

impl Lifecycle {
    pub fn new(
        config: Config,
        hostname: String,
        handle: netlink::Handle,
        pass_adverts: bool,
    ) -> (Self, mpsc::Receiver<Refreshed>) {
        let (results, receiver) = mpsc::channel(1);
        let lifecycle = Self {
            config: Arc::new(config),
            generation: 0,
            hostname,
            handle,
            pass_adverts,
            pending_up: BTreeSet::new(),
            up: HashMap::new(),
            refresh: RefreshState::Idle,
            results,
        };
        (lifecycle, receiver)
    }

    /// A reload committed `config` (with interfaces it read itself).
    pub fn reloaded(&mut self, runtime: &mut Runtime, config: Config) {
        self.config = Arc::new(config);
        self.generation += 1;
        self.release_pending(runtime);
    }

    /// A watched link changed. Interfaces only tracked go to the election
    /// as they are; VRRP interfaces go through the rules above.
    pub fn on_link(&mut self, runtime: &mut Runtime, event: &LinkEvent) {
        let name = event.name.as_str();
        let is_vrrp = runtime.instance_plans().any(|plan| plan.interface == name);
        if !is_vrrp {
            runtime.on_interface(name, event.up);
            return;
        }
        let was_up = self.up.insert(name.to_owned(), event.up);
        let attached = runtime.attached().get(name).copied();
        if !event.up {
            self.pending_up.remove(name);
            runtime.on_interface(name, false);
            if event.state == LinkState::Absent {
                info!(
                    interface = name,
                    "VRRP interface gone (deleted or renamed); instances are FAULT until it is back"
                );
                runtime.drop_interface(name);
            }
            return;
        }
        let same_link = attached.is_some() && attached == event.ifindex;
        if same_link && was_up != Some(false) && !self.pending_up.contains(name) {
            // The first report after start, or nothing the election missed.
            runtime.on_interface(name, true);
            return;
        }
        if !same_link {
            if was_up == Some(true) {
                // Another link took the name with no "gone" seen in between
                // (notifications lost): the old one is gone all the same.
                runtime.on_interface(name, false);
            }
            runtime.drop_interface(name);
            info!(interface = name, ifindex = ?event.ifindex, "VRRP interface is back under a new ifindex; re-attaching");
        }
        // track_interface follows the link alone; the instances on it wait
        // for their datapath and an address.
        runtime.on_tracked_interface(name, true);
        self.pending_up.insert(name.to_owned());
        self.request(runtime);
    }

    /// Addresses changed on some interface.
    pub fn on_address(&mut self, runtime: &Runtime, change: AddressChange) {
        let watched: Vec<u32> = runtime
            .attached()
            .values()
            .copied()
            .chain(runtime.instance_plans().map(|plan| plan.ifindex))
            .collect();
        let vips: HashSet<IpAddr> = runtime
            .instance_plans()
            .flat_map(|plan| plan.vips.iter().map(|vip| vip.address))
            .collect();
        if rereads(change, !self.pending_up.is_empty(), &watched, &vips) {
            self.request(runtime);
        }
    }

    fn request(&mut self, runtime: &Runtime) {
        match self.refresh {
            RefreshState::Idle => {
                self.spawn(runtime);
                self.refresh = RefreshState::Running;
            }
            RefreshState::Running | RefreshState::RunningThenAgain => {
                self.refresh = RefreshState::RunningThenAgain;
            }
        }
    }

    /// Reads the interfaces and plans off the election task.
    fn spawn(&self, runtime: &Runtime) {
        let exclude: Vec<IpAddr> = runtime
            .instance_plans()
            .flat_map(|plan| plan.vips.iter().map(|vip| vip.address))
            .collect();
        let config = Arc::clone(&self.config);
        let handle = self.handle.clone();
        let hostname = self.hostname.clone();
        let generation = self.generation;
        let results = self.results.clone();
        tokio::spawn(async move {
            let outcome = gather(&handle, &config, &hostname, &exclude).await;
            let _ = results
                .send(Refreshed {
                    generation,
                    outcome,
                })
                .await;
        });
    }

    /// A re-read is done: commits what it found, if it still applies.
    pub async fn on_refreshed(&mut self, runtime: &mut Runtime, refreshed: Refreshed) {
        let again = self.refresh == RefreshState::RunningThenAgain;
        self.refresh = RefreshState::Idle;
        if refreshed.generation == self.generation {
            match refreshed.outcome {
                Ok(gathered) => self.commit(runtime, gathered).await,
                // A re-created interface without its address yet, or the
                // address removed: nothing to advertise from, so FAULT (as
                // keepalived) until the address arriving applies the plan.
                Err(Unplanned { error, unaddressed }) => {
                    info!(%error, "interfaces re-read; waiting for the next change to apply them");
                    self.fault_unaddressed(runtime, unaddressed);
                }
            }
        } else {
            debug!("interfaces re-read for a configuration since replaced; reading again");
        }
        if again || refreshed.generation != self.generation {
            self.request(runtime);
        }
    }

    async fn commit(&mut self, runtime: &mut Runtime, gathered: Gathered) {
        let Gathered {
            plan,
            addresses,
            local,
        } = gathered;
        // With every address already read, this asks the kernel nothing
        // over netlink: it attaches programs and opens sockets.
        if let Err(error) =
            setup::attach(runtime, &plan, &self.handle, self.pass_adverts, &addresses).await
        {
            warn!(%error, "re-attaching to the interfaces failed; retrying at the next change");
            return;
        }
        let unchanged = runtime
            .instance_plans()
            .map(|running| running.as_ref())
            .eq(plan.instances());
        if !unchanged {
            info!("interfaces changed: instances follow the new ifindex and addresses");
            let global = runtime.env.global.clone();
            runtime.reload(&plan, global);
        }
        runtime.set_local_addresses(&local);
        self.release_pending(runtime);
    }

    fn fault_unaddressed(&mut self, runtime: &mut Runtime, unaddressed: BTreeSet<String>) {
        for name in unaddressed {
            if self.pending_up.insert(name.clone()) {
                warn!(interface = %name, "VRRP interface has no address to advertise from; its instances are FAULT until it has one");
                runtime.on_instance_interface(&name, false);
            }
        }
    }

    /// Interfaces waiting to be announced up that have their datapath now.
    fn release_pending(&mut self, runtime: &mut Runtime) {
        let ready: Vec<String> = self
            .pending_up
            .iter()
            .filter(|name| {
                let attached = runtime.attached().get(name.as_str()).copied();
                attached.is_some()
                    && runtime
                        .instance_plans()
                        .any(|plan| &plan.interface == *name && Some(plan.ifindex) == attached)
            })
            .cloned()
            .collect();
        for name in ready {
            self.pending_up.remove(&name);
            if self.up.get(&name) == Some(&true) {
                info!(interface = %name, "VRRP interface usable again");
                runtime.on_interface(&name, true);
            }
        }
    }
}

/// Whether an address change calls for re-reading the interfaces.
/// Changes of the daemon's own virtual addresses never do: the re-read
/// leaves them out (they are never the advert source nor own addresses),
/// so it would plan the same thing, and a backup taking over or giving
/// back many instances would otherwise re-read the interfaces once per
/// address, late in the very moments its timers matter most.
fn rereads(
    change: AddressChange,
    pending_up: bool,
    watched_ifindexes: &[u32],
    vips: &HashSet<IpAddr>,
) -> bool {
    match change {
        AddressChange::Unknown => true,
        AddressChange::Interface { ifindex, address } => {
            let virtual_address = address.is_some_and(|address| vips.contains(&address));
            !virtual_address && (pending_up || watched_ifindexes.contains(&ifindex))
        }
    }
}

async fn gather(
    handle: &netlink::Handle,
    config: &Config,
    hostname: &str,
    exclude: &[IpAddr],
) -> Result<Gathered, Unplanned> {
    let unplanned = |error| Unplanned {
        error,
        unaddressed: BTreeSet::new(),
    };
    let (facts, addresses) = setup::interface_facts_excluding(handle, config, exclude)
        .await
        .map_err(unplanned)?;
    let plan =
        plan::plan(config, &|name| facts.get(name).cloned(), hostname).map_err(|errors| {
            let unaddressed = errors
                .iter()
                .filter_map(|error| match error {
                    PlanError::NoSourceAddress { interface, .. } => Some(interface.clone()),
                    _ => None,
                })
                .collect();
            Unplanned {
                error: super::plan_error(errors),
                unaddressed,
            }
        })?;
    let local = plan
        .instances()
        .filter_map(|instance| addresses.get(&instance.ifindex))
        .flatten()
        .filter(|address| !exclude.contains(address))
        .copied()
        .collect();
    Ok(Gathered {
        plan,
        addresses,
        local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_that_can_change_the_plan_re_read_the_interfaces() {
        let vip: IpAddr = "203.0.113.1".parse().unwrap();
        let own: IpAddr = "192.0.2.2".parse().unwrap();
        let vips: HashSet<IpAddr> = [vip, "2001:db8::1".parse().unwrap()].into();
        let watched = [3, 7];
        let on = |ifindex, address: Option<IpAddr>| AddressChange::Interface { ifindex, address };
        // (change, an interface waiting to be announced up, re-read?)
        let cases = [
            (AddressChange::Unknown, false, true),
            (on(3, Some(own)), false, true),
            (on(7, Some(own)), false, true),
            // A VIP added or removed, on the VRRP interface or elsewhere,
            // by the daemon or by hand: left out of the re-read anyway.
            (on(3, Some(vip)), false, false),
            (on(3, Some("2001:db8::1".parse().unwrap())), false, false),
            (on(9, Some(vip)), true, false),
            // No address in the message: anything may have changed.
            (on(3, None), false, true),
            // Another interface: only while one waits for its address
            // (it may be that one, re-created under a new ifindex).
            (on(9, Some(own)), false, false),
            (on(9, Some(own)), true, true),
            (on(9, None), true, true),
        ];
        for (change, pending_up, expected) in cases {
            assert_eq!(
                rereads(change, pending_up, &watched, &vips),
                expected,
                "{change:?} pending_up={pending_up}"
            );
        }
    }
}
