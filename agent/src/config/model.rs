//! The typed configuration, with keepalived 2.2's defaults filled in.
//!
//! Everything here is the *effective* value the agent will run with, so a
//! JSON dump answers "what will actually happen". Positions kept for
//! validation and later diagnostics are not serialized.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::{Serialize, Serializer, ser::SerializeStruct};

use super::diagnostic::Position;
use crate::tracking::CommandLine;
pub use crate::vrrp::Version;

/// Durations appear in the dump as (fractional) seconds, as they are written
/// in keepalived.conf.
fn seconds<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(value.as_secs_f64())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub global_defs: GlobalDefs,
    pub vrrp_scripts: Vec<VrrpScript>,
    pub track_files: Vec<TrackFile>,
    pub track_processes: Vec<TrackProcess>,
    pub vrrp_instances: Vec<VrrpInstance>,
    pub vrrp_sync_groups: Vec<SyncGroup>,
}

impl Config {
    pub fn instance(&self, name: &str) -> Option<&VrrpInstance> {
        self.vrrp_instances.iter().find(|i| i.name == name)
    }

    pub fn script(&self, name: &str) -> Option<&VrrpScript> {
        self.vrrp_scripts.iter().find(|s| s.name == name)
    }

    pub fn track_file(&self, name: &str) -> Option<&TrackFile> {
        self.track_files.iter().find(|t| t.name == name)
    }

    pub fn track_process(&self, name: &str) -> Option<&TrackProcess> {
        self.track_processes.iter().find(|t| t.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlobalDefs {
    pub router_id: Option<String>,
    pub notification_email: Vec<String>,
    pub notification_email_from: Option<String>,
    pub smtp_server: Option<SmtpServer>,
    #[serde(serialize_with = "seconds")]
    pub smtp_connect_timeout: Duration,
    /// Default for instances and sync groups that do not say.
    pub smtp_alert: bool,
    pub vrrp_version: Version,
    pub vrrp_mcast_group4: Ipv4Addr,
    pub vrrp_mcast_group6: Ipv6Addr,
    /// Defaults for the per-instance GARP settings.
    pub garp: GarpSettings,
    /// Pause between gratuitous ARPs on one interface (resolution 1 µs).
    #[serde(serialize_with = "seconds")]
    pub vrrp_garp_interval: Duration,
    /// Pause between unsolicited neighbour adverts on one interface.
    #[serde(serialize_with = "seconds")]
    pub vrrp_gna_interval: Duration,
    pub vrrp_strict: bool,
    /// Default of the instances' `v3_checksum_as_v2` (keepalived >= 2.2.8).
    pub v3_checksum_as_v2: bool,
    /// Default of the instances' `lower_prio_no_advert`.
    pub vrrp_lower_prio_no_advert: bool,
    /// Default of the instances' `higher_prio_send_advert`.
    pub vrrp_higher_prio_send_advert: bool,
    /// Every unicast instance checks that adverts come from its peers.
    pub vrrp_check_unicast_src: bool,
    pub script_user: Option<RunAs>,
    pub enable_script_security: bool,
    /// `process_monitor_rcv_bufs`: receive buffer of the process-event
    /// socket, in bytes (`None`: the kernel's default).
    pub process_monitor_rcv_bufs: Option<u32>,
    /// `process_monitor_rcv_bufs_force`: set it with SO_RCVBUFFORCE, past
    /// `net.core.rmem_max`.
    pub process_monitor_rcv_bufs_force: bool,
}

impl Default for GlobalDefs {
    fn default() -> Self {
        Self {
            router_id: None,
            notification_email: Vec::new(),
            notification_email_from: None,
            smtp_server: None,
            smtp_connect_timeout: Duration::from_secs(30),
            smtp_alert: false,
            vrrp_version: Version::V2,
            vrrp_mcast_group4: Ipv4Addr::new(224, 0, 0, 18),
            vrrp_mcast_group6: Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12),
            garp: GarpSettings::default(),
            vrrp_garp_interval: Duration::ZERO,
            vrrp_gna_interval: Duration::ZERO,
            vrrp_strict: false,
            v3_checksum_as_v2: false,
            vrrp_lower_prio_no_advert: false,
            vrrp_higher_prio_send_advert: false,
            vrrp_check_unicast_src: false,
            script_user: None,
            enable_script_security: false,
            process_monitor_rcv_bufs: None,
            process_monitor_rcv_bufs_force: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmtpServer {
    /// An IP address or a host name.
    pub host: String,
    pub port: u16,
}

/// When and how often gratuitous ARPs / unsolicited NAs are repeated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GarpSettings {
    /// Second burst after becoming master; zero means none.
    #[serde(serialize_with = "seconds")]
    pub master_delay: Duration,
    pub master_repeat: u32,
    /// Second burst after a lower-priority advert while master.
    #[serde(serialize_with = "seconds")]
    pub lower_prio_delay: Duration,
    pub lower_prio_repeat: u32,
    /// Periodic refresh while master; zero means none.
    #[serde(serialize_with = "seconds")]
    pub master_refresh: Duration,
    pub master_refresh_repeat: u32,
}

impl Default for GarpSettings {
    fn default() -> Self {
        Self {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            lower_prio_delay: Duration::from_secs(5),
            lower_prio_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
        }
    }
}

/// User (and optionally group) a script runs as.
///
/// Equality ignores where it was written: moving a line is no change.
#[derive(Debug, Clone, Serialize)]
pub struct RunAs {
    pub user: String,
    pub group: Option<String>,
    /// Where the user name was written, for host checks.
    #[serde(skip)]
    pub position: Position,
}

impl PartialEq for RunAs {
    fn eq(&self, other: &Self) -> bool {
        (&self.user, &self.group) == (&other.user, &other.group)
    }
}

impl Eq for RunAs {}

/// A `script` / `notify*` command line, split once, when the file is read,
/// into what the daemon executes.
///
/// The dump shows the text as written (`line`) and the argument vector that
/// runs (`argv`; `/bin/sh -c TEXT` for keepalived's `<`/`>` special case;
/// bytes that are not UTF-8 shown as U+FFFD).
///
/// Equality ignores where it was written: moving a line is no change.
#[derive(Debug, Clone)]
pub struct Command {
    pub run: CommandLine,
    /// Where the command was written, for host checks.
    pub position: Position,
}

impl Command {
    /// The text as written (a multi-word value joined, words with spaces
    /// quoted).
    pub fn line(&self) -> &str {
        self.run.source()
    }

    /// The program and arguments that run, for the dump and tests.
    pub fn argv(&self) -> Vec<String> {
        self.run
            .argv_with(&[])
            .iter()
            .map(|word| word.to_string_lossy().into_owned())
            .collect()
    }
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut dump = serializer.serialize_struct("Command", 2)?;
        dump.serialize_field("line", self.line())?;
        dump.serialize_field("argv", &self.argv())?;
        dump.end()
    }
}

impl PartialEq for Command {
    fn eq(&self, other: &Self) -> bool {
        self.run == other.run
    }
}

impl Eq for Command {}

/// A notify hook: the command and who runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notify {
    pub command: Command,
    pub run_as: Option<RunAs>,
    /// The `notify*` statement, for diagnostics.
    #[serde(skip)]
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VrrpScript {
    pub name: String,
    pub script: Command,
    #[serde(serialize_with = "seconds")]
    pub interval: Duration,
    /// How long a run may take before it counts as failed; keepalived's
    /// default is the interval.
    #[serde(serialize_with = "seconds")]
    pub timeout: Duration,
    pub weight: i32,
    pub weight_reverse: bool,
    pub rise: u32,
    pub fall: u32,
    pub user: Option<RunAs>,
    pub init_fail: bool,
    #[serde(skip)]
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackFile {
    pub name: String,
    pub file: String,
    pub weight: i32,
    pub weight_reverse: bool,
    pub init_file: Option<InitFile>,
    #[serde(skip)]
    pub position: Position,
}

/// How a `vrrp_track_process`'s parameters are compared with a process's
/// command line (keepalived's `param_match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamMatch {
    /// No parameters were written and no `param_match`: any parameters.
    None,
    /// The parameters are exactly the ones written (none if none).
    Exact,
    /// The written parameters are the first ones; more may follow.
    Partial,
    /// As partial, and the last written one may be the start of a longer one.
    Initial,
}

/// One `vrrp_track_process` block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackProcess {
    pub name: String,
    /// The process name (`/proc/PID/comm`) or, with `full_command`, the
    /// first word of `/proc/PID/cmdline`.
    pub process: String,
    /// Parameters after the name, each one word of the command line.
    pub params: Vec<String>,
    pub param_match: ParamMatch,
    /// Match against the command line rather than the process name (set by
    /// `full_command`, by parameters and by `param_match`).
    pub full_command: bool,
    pub weight: i32,
    pub weight_reverse: bool,
    /// Fewest matching processes that count as up (0 with `quorum_max 0`).
    pub quorum: u32,
    /// Most matching processes that count as up.
    pub quorum_max: u32,
    /// How long a quorum gained by a fork waits before it counts.
    #[serde(serialize_with = "seconds")]
    pub fork_delay: Duration,
    /// How long a quorum lost by an exit waits before it counts.
    #[serde(serialize_with = "seconds")]
    pub terminate_delay: Duration,
    #[serde(skip)]
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitFile {
    pub value: i64,
    pub overwrite: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InitialState {
    Master,
    Backup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AddressFamily {
    #[serde(rename = "inet")]
    Ipv4,
    #[serde(rename = "inet6")]
    Ipv6,
}

impl AddressFamily {
    pub fn of(address: &IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AuthType {
    Pass,
    Ah,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authentication {
    pub auth_type: AuthType,
    /// At most 8 characters; longer ones are truncated as keepalived does.
    pub auth_pass: String,
}

/// keepalived's `old_unicast_checksum`: how to compute the VRRPv3 checksum
/// of unicast adverts (keepalived before 1.3.6 computed it differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnicastChecksumCompat {
    /// Current algorithm, but accept old checksums seen from peers.
    Auto,
    /// `old_unicast_checksum`: send the old form.
    Old,
    /// `old_unicast_checksum never`: no detection of old checksums.
    Never,
}

/// Address and route scopes: the netlink type itself, so what the file
/// says is what the kernel is asked for.
pub use crate::netlink::Scope;

/// Broadcast address of a VIP: explicit, or computed from the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Broadcast {
    Address(IpAddr),
    /// `brd +`: host bits set.
    HostBitsSet,
    /// `brd -`: host bits cleared.
    HostBitsCleared,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VirtualAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
    pub brd: Option<Broadcast>,
    /// Defaults to the instance's interface.
    pub dev: Option<String>,
    pub scope: Option<Scope>,
    pub label: Option<String>,
    pub no_track: bool,
    #[serde(skip)]
    pub position: Position,
}

/// Route types: the netlink type itself.
pub use crate::netlink::RouteKind as RouteType;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VirtualRoute {
    pub route_type: RouteType,
    pub src: Option<IpAddr>,
    pub to: IpAddr,
    pub prefix_len: u8,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub scope: Option<Scope>,
    pub metric: Option<u32>,
    pub table: Option<u32>,
    pub no_track: bool,
    #[serde(skip)]
    pub position: Position,
}

/// A `track_script` / `track_interface` / `track_file` / `track_process`
/// entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackRef {
    pub name: String,
    /// `None`: use the tracked object's own weight (0 for interfaces,
    /// meaning "fault when down").
    pub weight: Option<i32>,
    pub reverse: bool,
    #[serde(skip)]
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnicastPeer {
    pub address: IpAddr,
    pub min_ttl: Option<u8>,
    pub max_ttl: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VrrpInstance {
    pub name: String,
    pub state: InitialState,
    pub interface: String,
    pub virtual_router_id: u8,
    pub priority: u8,
    /// A multiple of 10 ms (v3) or of 1 s (v2).
    #[serde(serialize_with = "seconds")]
    pub advert_int: Duration,
    pub version: Version,
    /// Family of the VIPs (IPv4 when there are none).
    pub family: AddressFamily,
    pub preempt: bool,
    #[serde(serialize_with = "seconds")]
    pub preempt_delay: Duration,
    pub accept: bool,
    pub strict_mode: bool,
    pub garp: GarpSettings,
    /// A master does not answer a lower-priority advert with its own
    /// (keepalived answers by default; strict mode never does).
    pub lower_prio_no_advert: bool,
    /// A master that yields to a higher-priority advert sends one advert
    /// of its own first (off by default; never in strict mode).
    pub higher_prio_send_advert: bool,
    pub authentication: Option<Authentication>,
    pub virtual_ipaddress: Vec<VirtualAddress>,
    pub virtual_ipaddress_excluded: Vec<VirtualAddress>,
    pub virtual_routes: Vec<VirtualRoute>,
    pub track_script: Vec<TrackRef>,
    pub track_interface: Vec<TrackRef>,
    pub track_file: Vec<TrackRef>,
    pub track_process: Vec<TrackRef>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peer: Vec<UnicastPeer>,
    /// `unicast_ttl`: the TTL / hop limit of adverts to unicast peers.
    /// `None`: 255 (keepalived: 255 over IPv4, the kernel's default hop
    /// limit over IPv6).
    pub unicast_ttl: Option<u8>,
    /// Adverts must come from a unicast peer, within its TTL range:
    /// `check_unicast_src`, the global `vrrp_check_unicast_src`, or a
    /// peer's `min_ttl` / `max_ttl` (which set it in keepalived).
    pub check_unicast_src: bool,
    /// `unicast_fault_no_peer`: a unicast instance without peers stays in
    /// FAULT instead of falling back to multicast.
    pub unicast_fault_no_peer: bool,
    /// A unicast keyword is present but no peer: keepalived then runs the
    /// instance over multicast, or in FAULT with `unicast_fault_no_peer`.
    pub unicast_without_peers: bool,
    pub mcast_src_ip: Option<IpAddr>,
    pub notify_master: Option<Notify>,
    pub notify_backup: Option<Notify>,
    pub notify_fault: Option<Notify>,
    pub notify_stop: Option<Notify>,
    pub notify: Option<Notify>,
    /// Run, as configured, when this master hears a lower-priority advert
    /// (the other router went master through a split brain).
    pub notify_master_rx_lower_pri: Option<Notify>,
    pub smtp_alert: bool,
    /// Set with `use_vmac`: keepalived's macvlan name (none is created:
    /// the kernel programs answer with the virtual MAC on `interface`).
    pub use_vmac: Option<String>,
    /// `vmac_xmit_base`: adverts keep the interface's own MAC.
    pub vmac_xmit_base: bool,
    pub old_unicast_checksum: UnicastChecksumCompat,
    /// keepalived >= 2.2.8 (instance, else global_defs): send VRRPv3-over-IPv4
    /// adverts with the RFC 9568 checksum (message only) instead of the
    /// pseudo-header form keepalived sends by default.
    pub v3_checksum_as_v2: bool,
    #[serde(skip)]
    pub positions: InstancePositions,
}

impl VrrpInstance {
    /// The notify hooks that are set, in keepalived's order.
    pub fn notifies(&self) -> impl Iterator<Item = &Notify> {
        [
            &self.notify_master,
            &self.notify_backup,
            &self.notify_fault,
            &self.notify_stop,
            &self.notify,
            &self.notify_master_rx_lower_pri,
        ]
        .into_iter()
        .flatten()
    }
}

/// Where an instance's checked settings were written, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstancePositions {
    pub name: Position,
    pub interface: Option<Position>,
    pub virtual_router_id: Option<Position>,
    pub advert_int: Option<Position>,
    pub version: Option<Position>,
    pub authentication: Option<Position>,
    pub unicast_src_ip: Option<Position>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncGroup {
    pub name: String,
    pub group: Vec<String>,
    pub notify_master: Option<Notify>,
    pub notify_backup: Option<Notify>,
    pub notify_fault: Option<Notify>,
    pub notify_stop: Option<Notify>,
    pub notify: Option<Notify>,
    pub smtp_alert: bool,
    /// Tracked for every member, as if each listed it (keepalived's
    /// sync_group_tracking_init); the members' `track_*` already include
    /// these after reading.
    pub track_script: Vec<TrackRef>,
    pub track_interface: Vec<TrackRef>,
    pub track_file: Vec<TrackRef>,
    pub track_process: Vec<TrackRef>,
    /// `sync_group_tracking_weight` (or the deprecated `global_tracking`):
    /// members keep their own weighted tracking. Without it keepalived
    /// drops a member's weights, because members at different priorities
    /// would no longer move together.
    pub tracking_weight: bool,
    #[serde(skip)]
    pub position: Position,
    #[serde(skip)]
    pub member_positions: Vec<Position>,
}

impl SyncGroup {
    /// The notify hooks that are set, in keepalived's order.
    pub fn notifies(&self) -> impl Iterator<Item = &Notify> {
        [
            &self.notify_master,
            &self.notify_backup,
            &self.notify_fault,
            &self.notify_stop,
            &self.notify,
        ]
        .into_iter()
        .flatten()
    }
}
