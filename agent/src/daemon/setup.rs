//! Preparing a plan for the runtime, as a transaction: read, validate and
//! plan the file, prove every hook and tracked script can run, then attach
//! to new interfaces and open new sockets. Any failure leaves the running
//! configuration untouched; only then does the runtime commit.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::{Path, PathBuf},
};

use tracing::warn;

use crate::{
    advert_socket::AdvertSocket,
    config::{self, Config},
    datapath::InterfaceMode,
    frame_socket::FrameSocket,
    netlink::{self, Interfaces},
    notify::Scope,
};

use super::{
    DaemonError, hooks,
    plan::{self, InterfaceInfo, Plan, TrackerConfig},
    runtime::Runtime,
};

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A configuration proven to start, not yet applied.
pub struct Prepared {
    pub config: Config,
    pub plan: Plan,
}

/// Reads, validates and plans `path`, and checks every hook; touches
/// nothing. Runs off the election task: parsing a large include tree must
/// not delay an advert.
pub async fn prepare(
    path: PathBuf,
    config_id: String,
    handle: netlink::Handle,
    hostname: String,
) -> Result<Prepared, DaemonError> {
    let config = tokio::task::spawn_blocking(move || load_config(&path, &config_id))
        .await
        .map_err(|error| {
            DaemonError::Setup(format!("reading the configuration failed: {error}"))
        })??;
    let mut config = config;
    resolve_unicast_interfaces(&handle, &mut config).await?;
    let facts = interface_facts(&handle, &config).await?;
    let mut plan = plan::plan(&config, &|name| facts.get(name).cloned(), &hostname)
        .map_err(super::plan_error)?;
    check_hooks(&config, &plan)?;
    initial_process_states(&mut plan).await;
    Ok(Prepared { config, plan })
}

pub fn load_config(path: &Path, config_id: &str) -> Result<Config, DaemonError> {
    match config::load(path, config_id) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                warn!("{warning}");
            }
            Ok(loaded.config)
        }
        // One line, as an operator reads a refusal: every error, `; `-joined.
        Err(errors) => Err(DaemonError::Config {
            path: path.to_owned(),
            errors: errors
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// Tracked processes start with what `/proc` shows now, as keepalived
/// counts them before its instances start: an instance tracking a process
/// that is not running starts in FAULT instead of briefly running without
/// it until the monitor's first report.
async fn initial_process_states(plan: &mut Plan) {
    use crate::tracking::process::ProcessTable;
    let specs: Vec<_> = plan
        .trackers
        .values()
        .filter_map(|tracker| match tracker {
            TrackerConfig::Process(process) => Some(plan::process_spec(process)),
            _ => None,
        })
        .collect();
    if specs.is_empty() {
        return;
    }
    let cmdline = specs.iter().any(|spec| spec.full_command);
    let Ok(scan) = tokio::task::spawn_blocking(move || {
        crate::tracking::proc_events::scan(Path::new("/proc"), cmdline)
    })
    .await
    else {
        return;
    };
    let mut table = ProcessTable::default();
    let up: HashMap<String, bool> = specs
        .into_iter()
        .map(|spec| {
            let first = table.add(spec, &scan);
            (first.name, first.up)
        })
        .collect();
    for member in plan.groups.iter_mut().flat_map(|group| &mut group.members) {
        for (item, source) in member.election.tracked.iter_mut().zip(&member.tracked) {
            if let plan::TrackedSource::Process(name) = source
                && let Some(&up) = up.get(name)
            {
                item.initially_up = up;
            }
        }
    }
}

/// Every notify hook and tracked script resolves (command, user), so the
/// commit cannot fail on one.
fn check_hooks(config: &Config, plan: &Plan) -> Result<(), DaemonError> {
    let global = &config.global_defs;
    let mut problems = Vec::new();
    for tracker in plan.trackers.values() {
        if let TrackerConfig::Script(script) = tracker
            && let Err(error) = hooks::script_spec(script, global)
        {
            problems.push(error.to_string());
        }
    }
    for group in &plan.groups {
        if let Some(name) = &group.name
            && let Err(error) = hooks::notify_target(Scope::Group, name, &group.notify, global)
        {
            problems.push(error.to_string());
        }
        for member in &group.members {
            if let Err(error) =
                hooks::notify_target(Scope::Instance, &member.name, &member.notify, global)
            {
                problems.push(error.to_string());
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(DaemonError::Setup(problems.join("; ")))
    }
}

/// Unicast instances written without `interface` run on the interface
/// holding their `unicast_src_ip`.
async fn resolve_unicast_interfaces(
    handle: &netlink::Handle,
    config: &mut Config,
) -> Result<(), DaemonError> {
    if config
        .vrrp_instances
        .iter()
        .all(|instance| !instance.interface.is_empty())
    {
        return Ok(());
    }
    let interfaces = Interfaces::new(handle.clone());
    let addresses = interfaces.all_addresses().await?;
    let mut names = HashMap::new();
    for link in interfaces.all().await? {
        names.insert(link.index, link.name);
    }
    crate::config::unicast::resolve_interfaces(config, &|address| {
        let holder = addresses.iter().find(|entry| entry.address == address)?;
        names.get(&holder.ifindex).cloned()
    })
    .map_err(|errors| {
        DaemonError::Setup(
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Facts about every interface the configuration names.
pub async fn interface_facts(
    handle: &netlink::Handle,
    config: &Config,
) -> Result<HashMap<String, InterfaceInfo>, DaemonError> {
    Ok(interface_facts_excluding(handle, config, &[]).await?.0)
}

/// Every address of an interface, by ifindex.
pub type AddressesByIndex = HashMap<u32, Vec<IpAddr>>;

/// [`interface_facts`] with `exclude` (the virtual addresses) never taken
/// as an advert source, and every address of those interfaces. When only
/// excluded addresses are primary (a VIP promoted when the primary address
/// was deleted), the first other IPv4 address is the source.
pub async fn interface_facts_excluding(
    handle: &netlink::Handle,
    config: &Config,
    exclude: &[IpAddr],
) -> Result<(HashMap<String, InterfaceInfo>, AddressesByIndex), DaemonError> {
    let interfaces = Interfaces::new(handle.clone());
    let mut names: HashSet<&str> = HashSet::new();
    for instance in &config.vrrp_instances {
        names.insert(&instance.interface);
        for tracked in &instance.track_interface {
            names.insert(&tracked.name);
        }
    }
    let mut facts = HashMap::new();
    let mut all = HashMap::new();
    for name in names {
        let Ok(info) = interfaces.by_name(name).await else {
            continue;
        };
        let addresses = interfaces.addresses(info.index).await?;
        let mut ipv4: Vec<std::net::Ipv4Addr> = Vec::new();
        let fallback = || {
            addresses.iter().find_map(|entry| match entry.address {
                IpAddr::V4(v4) if !exclude.contains(&entry.address) => Some(v4),
                _ => None,
            })
        };
        let primary = netlink::primary_ipv4(&addresses, exclude);
        if let Some(primary) =
            primary.or_else(|| if exclude.is_empty() { None } else { fallback() })
        {
            ipv4.push(primary);
        }
        all.insert(
            info.index,
            addresses.iter().map(|entry| entry.address).collect(),
        );
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
    Ok((facts, all))
}

/// What one [`attach`] added, so a failed transaction can take it back.
#[derive(Default)]
pub struct Attached {
    interfaces: Vec<String>,
    sockets: Vec<(u32, IpAddr)>,
    frames: Vec<u32>,
}

impl Attached {
    pub fn roll_back(self, runtime: &mut Runtime) {
        for (ifindex, source) in self.sockets {
            runtime.remove_socket(ifindex, source);
        }
        for ifindex in self.frames {
            runtime.remove_frame_socket(ifindex);
        }
        for interface in self.interfaces {
            runtime.forget_attached(&interface);
        }
    }
}

/// Programs on every interface of the plan, the node's own addresses, and
/// the sockets adverts and announcements leave through; what already
/// exists is kept. On failure, what this call added is taken back.
/// `known` holds addresses already read (by ifindex): those interfaces
/// are not asked again, so a caller on the election task reads nothing.
pub async fn attach(
    runtime: &mut Runtime,
    plan: &Plan,
    handle: &netlink::Handle,
    pass_adverts: bool,
    known: &AddressesByIndex,
) -> Result<Attached, DaemonError> {
    let mut added = Attached::default();
    match attach_into(runtime, plan, handle, pass_adverts, known, &mut added).await {
        Ok(()) => Ok(added),
        Err(error) => {
            added.roll_back(runtime);
            Err(error)
        }
    }
}

async fn attach_into(
    runtime: &mut Runtime,
    plan: &Plan,
    handle: &netlink::Handle,
    pass_adverts: bool,
    known: &AddressesByIndex,
    added: &mut Attached,
) -> Result<(), DaemonError> {
    let interfaces = Interfaces::new(handle.clone());
    for instance in plan.instances() {
        if !runtime.attached().contains_key(&instance.interface) {
            let mode = InterfaceMode::Enforce {
                pass_consumed: pass_adverts,
            };
            runtime.datapath.attach(&instance.interface, mode)?;
            runtime.note_attached(instance.interface.clone(), instance.ifindex);
            added.interfaces.push(instance.interface.clone());
            runtime.datapath.attach_vip_guard(&instance.interface)?;
            if !plan
                .instances()
                .any(|other| other.interface == instance.interface && other.vmac.is_on())
            {
                runtime.datapath.unpin_unused_vmac_rx(&instance.interface);
            }
            let addresses = match known.get(&instance.ifindex) {
                Some(addresses) => addresses.clone(),
                None => interfaces
                    .addresses(instance.ifindex)
                    .await?
                    .into_iter()
                    .map(|entry| entry.address)
                    .collect(),
            };
            for address in addresses {
                runtime.add_local_address(address)?;
            }
        }
        if instance.vmac.is_on() {
            runtime.datapath.attach_vmac_rx(&instance.interface)?;
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
            added.sockets.push((instance.ifindex, instance.source));
        }
        if !runtime.has_frame_socket(instance.ifindex) {
            let socket = FrameSocket::open(instance.ifindex)
                .map_err(|error| DaemonError::Setup(error.to_string()))?;
            runtime.add_frame_socket(instance.ifindex, socket);
            added.frames.push(instance.ifindex);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_netns::TestNetns;

    const INSTANCE: &str = "vrrp_instance VI_1 {\n  interface v0\n  virtual_router_id 51\n  priority 100\n  advert_int 1\n  virtual_ipaddress { 203.0.113.1/24 }\n";

    /// One reload transaction's first step per row: what the file says, and
    /// what `prepare` must answer (a plan, or a refusal naming the problem).
    #[test]
    fn prepare_refuses_every_file_that_could_not_start_and_names_why() {
        let namespace = TestNetns::with_veth("vrrp-prep");
        namespace.ip(&["addr", "add", "192.0.2.10/24", "dev", "v0"]);
        let dir = std::env::temp_dir().join(format!("vrrp-prepare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cases: Vec<(&str, String, Result<(), &str>)> = vec![
            ("valid", format!("{INSTANCE}}}\n"), Ok(())),
            (
                "bad syntax",
                format!("{INSTANCE}  priority banana\n}}\n"),
                Err("keepalived.conf:7:"),
            ),
            (
                "missing interface",
                format!("{INSTANCE}}}\n").replace("interface v0", "interface nosuch0"),
                Err("interface \"nosuch0\" does not exist"),
            ),
            (
                "no address to send from",
                format!("{INSTANCE}}}\n").replace("interface v0", "interface v0p"),
                Err("has no IPv4 address"),
            ),
            (
                "missing script user",
                format!(
                    "vrrp_script chk {{\n  script \"/bin/true\"\n  user nosuchuser-vrrp\n}}\n{INSTANCE}  track_script {{ chk }}\n}}\n"
                ),
                Err("nosuchuser-vrrp"),
            ),
            (
                "missing notify user",
                format!("{INSTANCE}  notify_master \"/bin/true\" nosuchuser-vrrp\n}}\n"),
                Err("nosuchuser-vrrp"),
            ),
        ];
        for (name, text, expected) in cases {
            let path = dir.join("keepalived.conf");
            std::fs::write(&path, &text).expect("config written");
            let outcome = namespace.run(move || async move {
                let handle = netlink::connect().expect("netlink");
                prepare(path, "host".into(), handle, "host".into())
                    .await
                    .map(|prepared| prepared.plan.instances().count())
                    .map_err(|error| error.to_string())
            });
            match (outcome, expected) {
                (Ok(count), Ok(())) => assert_eq!(count, 1, "{name}"),
                (Err(error), Err(fragment)) => {
                    assert!(error.contains(fragment), "{name}: {error}")
                }
                (outcome, expected) => panic!("{name}: got {outcome:?}, expected {expected:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
