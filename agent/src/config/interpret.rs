//! Turns the statement tree into the typed model, one section at a time.
//!
//! `global_defs` is read first, wherever it appears, because it supplies the
//! defaults (VRRP version, GARP timings, strict mode, smtp_alert) of every
//! instance. Unknown keywords are warned about and skipped with their block.

use std::net::IpAddr;
use std::time::Duration;

use super::diagnostic::{Diagnostics, Position};
use super::model::*;
use super::parser::Statement;
use super::strict::{self, StrictPositions};
use super::values::*;

/// Top-level sections keepalived knows but this agent does not implement;
/// named separately so the warning does not suggest a typo.
const UNSUPPORTED_SECTIONS: &[&str] = &[
    "virtual_server",
    "virtual_server_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "garp_group",
    "bfd_instance",
    "track_group",
    "linkbeat_interfaces",
    "net_namespace",
    "net_namespace_ipvs",
    "instance",
    "use_pid_dir",
    "linkbeat_use_polling",
];

/// Which global GARP settings were written: the lower-priority ones default
/// to the global master ones.
#[derive(Default)]
struct GlobalExplicit {
    lower_prio_delay: bool,
    lower_prio_repeat: bool,
}

pub fn interpret(tree: &[Statement], diags: &mut Diagnostics) -> Config {
    let mut global = GlobalDefs::default();
    let mut explicit = GlobalExplicit::default();
    for statement in tree.iter().filter(|s| s.name() == "global_defs") {
        read_global_defs(statement, &mut global, &mut explicit, diags);
    }
    if !explicit.lower_prio_delay {
        global.garp.lower_prio_delay = global.garp.master_delay;
    }
    if !explicit.lower_prio_repeat {
        global.garp.lower_prio_repeat = global.garp.master_repeat;
    }

    let mut config = Config {
        global_defs: global,
        vrrp_scripts: Vec::new(),
        track_files: Vec::new(),
        track_processes: Vec::new(),
        vrrp_instances: Vec::new(),
        vrrp_sync_groups: Vec::new(),
    };
    for statement in tree {
        match statement.name() {
            "global_defs" => {}
            "vrrp_script" => {
                if let Some(script) = read_vrrp_script(statement, diags) {
                    config.vrrp_scripts.push(script);
                }
            }
            "vrrp_track_file" | "track_file" => {
                if let Some(track) = read_track_file(statement, diags) {
                    config.track_files.push(track);
                }
            }
            "vrrp_track_process" => {
                if let Some(track) = super::track_process::read_track_process(statement, diags) {
                    config.track_processes.push(track);
                }
            }
            "vrrp_instance" => {
                if let Some(instance) = read_instance(statement, &config.global_defs, diags) {
                    config.vrrp_instances.push(instance);
                }
            }
            "vrrp_sync_group" => {
                if let Some(group) = read_sync_group(statement, &config.global_defs, diags) {
                    config.vrrp_sync_groups.push(group);
                }
            }
            name if UNSUPPORTED_SECTIONS.contains(&name) => diags.warning(
                statement.position(),
                format!("{name} is not supported by vrrp-agent; section ignored"),
            ),
            _ => unknown_keyword(statement, "the top level", diags),
        }
    }
    super::sync_tracking::apply(&mut config, diags);
    config
}

/// The name after a section keyword (`vrrp_instance NAME {`).
fn section_name(statement: &Statement, diags: &mut Diagnostics) -> Option<String> {
    let usage = format!("{} NAME {{ ... }}", statement.name());
    let name = first_arg(statement, &usage, diags)?;
    warn_extra(statement, 1, diags);
    Some(name.text.clone())
}

fn read_global_defs(
    section: &Statement,
    global: &mut GlobalDefs,
    explicit: &mut GlobalExplicit,
    diags: &mut Diagnostics,
) {
    no_args(section, diags);
    let Some(body) = block(section, diags) else {
        return;
    };
    let mut mail_tokens = Vec::new();
    for s in &body.statements {
        let key = s.name();
        match key {
            "router_id" => {
                if let Some(t) = single_arg(s, "router_id STRING", diags) {
                    global.router_id = Some(t.text.clone());
                }
            }
            "notification_email" => {
                no_args(s, diags);
                let words = list_words(s, diags);
                let plain: Vec<_> = words
                    .into_iter()
                    .filter(|t| no_control_chars(t, key, diags))
                    .collect();
                global.notification_email = plain.iter().map(|t| t.text.clone()).collect();
                mail_tokens.extend(plain.into_iter().map(|t| (key, t)));
            }
            "notification_email_from" => {
                if let Some(t) = single_arg(s, "notification_email_from ADDRESS", diags)
                    && no_control_chars(t, key, diags)
                {
                    global.notification_email_from = Some(t.text.clone());
                    mail_tokens.push((key, t));
                }
            }
            "smtp_server" => {
                no_block(s, diags);
                warn_extra(s, 2, diags);
                if let Some(host) = first_arg(s, "smtp_server ADDRESS [PORT]", diags)
                    && no_control_chars(host, key, diags)
                {
                    let port = match s.args.get(1) {
                        Some(p) => int_in(p, "smtp_server port", 1, 65535, diags)
                            .and_then(|p| u16::try_from(p).ok()),
                        None => Some(25),
                    };
                    if let Some(port) = port {
                        global.smtp_server = Some(SmtpServer {
                            host: host.text.clone(),
                            port,
                        });
                    }
                }
            }
            "smtp_connect_timeout" => {
                if let Some(t) = single_arg(s, "smtp_connect_timeout SECONDS", diags)
                    && let Some(v) = u32_in(t, key, 1, 2_147_483_647, diags)
                {
                    global.smtp_connect_timeout = Duration::from_secs(u64::from(v));
                }
            }
            "smtp_alert" | "smtp_alert_vrrp" => {
                no_block(s, diags);
                if let Some(v) = flag(s, diags) {
                    global.smtp_alert = v;
                }
            }
            "vrrp_version" => {
                if let Some(t) = single_arg(s, "vrrp_version 2|3", diags)
                    && let Some(v) = version(t, key, diags)
                {
                    global.vrrp_version = v;
                }
            }
            "vrrp_mcast_group4" => {
                if let Some(t) = single_arg(s, "vrrp_mcast_group4 224.0.0.18", diags)
                    && let Some(a) = ip(t, key, diags)
                {
                    match a {
                        IpAddr::V4(v4) if v4.is_multicast() => global.vrrp_mcast_group4 = v4,
                        _ => diags.error(
                            &t.position,
                            format!(
                                "{key} \"{}\" is not an IPv4 multicast address; expected one in 224.0.0.0/4",
                                t.text
                            ),
                        ),
                    }
                }
            }
            "vrrp_mcast_group6" => {
                if let Some(t) = single_arg(s, "vrrp_mcast_group6 ff02::12", diags)
                    && let Some(a) = ip(t, key, diags)
                {
                    match a {
                        IpAddr::V6(v6) if v6.is_multicast() => global.vrrp_mcast_group6 = v6,
                        _ => diags.error(
                            &t.position,
                            format!(
                                "{key} \"{}\" is not an IPv6 multicast address; expected one in ff00::/8",
                                t.text
                            ),
                        ),
                    }
                }
            }
            "vrrp_garp_master_delay"
            | "vrrp_garp_master_repeat"
            | "vrrp_garp_master_refresh"
            | "vrrp_garp_master_refresh_repeat"
            | "vrrp_garp_lower_prio_delay"
            | "vrrp_garp_lower_prio_repeat" => {
                let short = key.trim_start_matches("vrrp_");
                if read_garp(s, short, &mut global.garp, diags) {
                    explicit.lower_prio_delay |= short == "garp_lower_prio_delay";
                    explicit.lower_prio_repeat |= short == "garp_lower_prio_repeat";
                }
            }
            "vrrp_garp_interval" | "vrrp_gna_interval" => {
                if let Some(t) = single_arg(s, &format!("{key} SECONDS"), diags)
                    && let Some(v) = seconds_in(t, key, 0.0, 1.0, diags)
                {
                    // keepalived's resolution is a microsecond.
                    let v = Duration::from_micros(u64::try_from(v.as_micros()).unwrap_or(0));
                    if key == "vrrp_garp_interval" {
                        global.vrrp_garp_interval = v;
                    } else {
                        global.vrrp_gna_interval = v;
                    }
                }
            }
            "vrrp_strict" => {
                no_block(s, diags);
                if let Some(v) = flag(s, diags) {
                    global.vrrp_strict = v;
                }
            }
            // keepalived >= 2.2.8: the default for every vrrp_instance, which
            // may say otherwise.
            "v3_checksum_as_v2" => {
                no_block(s, diags);
                if let Some(v) = flag(s, diags) {
                    if !v && let Some(arg) = s.args.first() {
                        diags.warning(
                            &arg.position,
                            "keepalived (2.2.8 to 2.3) turns the global v3_checksum_as_v2 on whatever its argument; the agent follows the documented [<BOOL>] and leaves it off, so a keepalived peer reading this file sends the other checksum form",
                        );
                    }
                    global.v3_checksum_as_v2 = v;
                }
            }
            "vrrp_lower_prio_no_advert" => {
                no_block(s, diags);
                if let Some(v) = flag(s, diags) {
                    global.vrrp_lower_prio_no_advert = v;
                }
            }
            "vrrp_higher_prio_send_advert" => {
                no_block(s, diags);
                if let Some(v) = flag(s, diags) {
                    global.vrrp_higher_prio_send_advert = v;
                }
            }
            "vrrp_check_unicast_src" => {
                bare(s, diags);
                global.vrrp_check_unicast_src = true;
            }
            "script_user" => {
                if let Some(r) = run_as(s, diags) {
                    global.script_user = Some(r);
                }
            }
            "enable_script_security" => {
                bare(s, diags);
                global.enable_script_security = true;
            }
            _ if super::track_process::read_global(s, global, diags) => {}
            _ => unknown_keyword(s, "global_defs", diags),
        }
    }
    if global.smtp_server.is_some() {
        for (key, token) in mail_tokens {
            if let Err(error) = token.text.parse::<lettre::message::Mailbox>() {
                diags.warning(
                    &token.position,
                    format!(
                        "{key} \"{}\" is not a mail address the SMTP client accepts ({error}); vrrp-agent sends no mail alerts while it is there; expected e.g. ops@example.com",
                        token.text
                    ),
                );
            }
        }
    }
}

/// Mail settings end up in SMTP commands and headers, where a CR or LF
/// (written as an escape in a quoted string) would end the line early:
/// the mail would be refused or, worse, say something else.
fn no_control_chars(token: &super::lexer::Token, key: &str, diags: &mut Diagnostics) -> bool {
    let Some(bad) = token.text.chars().find(|c| c.is_control()) else {
        return true;
    };
    diags.error(
        &token.position,
        format!(
            "{key} \"{}\" contains the control character {}; expected a plain address without CR, LF or other control characters",
            token.text.escape_debug(),
            bad.escape_unicode()
        ),
    );
    false
}

fn version(token: &super::lexer::Token, what: &str, diags: &mut Diagnostics) -> Option<Version> {
    match token.text.as_str() {
        "2" => Some(Version::V2),
        "3" => Some(Version::V3),
        other => {
            diags.error(
                &token.position,
                format!("{what} \"{other}\" is not a VRRP version; expected 2 or 3"),
            );
            None
        }
    }
}

/// One `garp_*` setting (without the `vrrp_` prefix); true when it was read.
fn read_garp(s: &Statement, key: &str, garp: &mut GarpSettings, diags: &mut Diagnostics) -> bool {
    // keepalived keeps these in microseconds in an int.
    const MAX_SECONDS: u32 = 2147;
    const MAX_COUNT: u32 = 2_147_483_647;
    let usage = format!("{} N", s.name());
    let Some(t) = single_arg(s, &usage, diags) else {
        return false;
    };
    let what = s.name();
    match key {
        "garp_master_delay" => whole_seconds(t, what, MAX_SECONDS, diags)
            .map(|v| garp.master_delay = v)
            .is_some(),
        "garp_master_repeat" => u32_in(t, what, 0, MAX_COUNT, diags)
            .map(|v| garp.master_repeat = v)
            .is_some(),
        "garp_master_refresh" => whole_seconds(t, what, MAX_SECONDS, diags)
            .map(|v| garp.master_refresh = v)
            .is_some(),
        "garp_master_refresh_repeat" => u32_in(t, what, 0, MAX_COUNT, diags)
            .map(|v| garp.master_refresh_repeat = v)
            .is_some(),
        "garp_lower_prio_delay" => whole_seconds(t, what, MAX_SECONDS, diags)
            .map(|v| garp.lower_prio_delay = v)
            .is_some(),
        "garp_lower_prio_repeat" => u32_in(t, what, 0, MAX_COUNT, diags)
            .map(|v| garp.lower_prio_repeat = v)
            .is_some(),
        _ => false,
    }
}

fn read_vrrp_script(section: &Statement, diags: &mut Diagnostics) -> Option<VrrpScript> {
    let name = section_name(section, diags);
    let body = block(section, diags)?;
    let name = name?;
    let mut script = None;
    let mut interval = Duration::from_secs(1);
    let mut timeout = None;
    let mut weight = 0;
    let mut weight_reverse = false;
    let mut rise = 1;
    let mut fall = 1;
    let mut user = None;
    let mut init_fail = false;
    // A script that was written but does not split is already reported.
    let mut unsplittable = false;
    // keepalived holds these in microseconds in an unsigned int, read with
    // millisecond resolution.
    const MAX_MILLIS: u64 = 4_294_000;
    for s in &body.statements {
        let key = s.name();
        match key {
            "script" => {
                no_block(s, diags);
                if first_arg(s, "script \"/path/to/script args\"", diags).is_some() {
                    script = command(&s.args, &format!("vrrp_script {name}"), diags);
                    unsplittable |= script.is_none();
                }
            }
            "interval" | "timeout" => {
                if let Some(t) = single_arg(s, &format!("{key} SECONDS"), diags)
                    && let Some(mut ms) = decimal_millis(t, key, MAX_MILLIS, diags)
                {
                    if ms == 0 {
                        // Accepted for configurations older than 2.0.7.
                        diags.warning(
                            &t.position,
                            format!("vrrp_script {name}: {key} must be greater than 0; using 1 second as keepalived does"),
                        );
                        ms = 1000;
                    }
                    let v = Duration::from_millis(ms);
                    if key == "interval" {
                        interval = v;
                    } else {
                        timeout = Some(v);
                    }
                }
            }
            "weight" => {
                if let Some((w, r)) = read_weight(s, -253, 253, diags) {
                    weight = w;
                    weight_reverse = r;
                }
            }
            "rise" | "fall" => {
                // keepalived reads 0 as 1 (with a config error it does not
                // stop on); a config it ran must not be refused here.
                if let Some(t) = single_arg(s, &format!("{key} N"), diags)
                    && let Some(v) = if t.text == "0" {
                        diags.warning(
                            &t.position,
                            format!("{key} 0 is read as {key} 1, as keepalived does; expected {key} 1 or more"),
                        );
                        Some(1)
                    } else {
                        u32_in(t, key, 1, 2_147_483_647, diags)
                    }
                {
                    if key == "rise" {
                        rise = v;
                    } else {
                        fall = v;
                    }
                }
            }
            "user" => user = run_as(s, diags),
            "init_fail" => {
                bare(s, diags);
                init_fail = true;
            }
            _ => unknown_keyword(s, "vrrp_script", diags),
        }
    }
    let Some(script) = script else {
        if unsplittable {
            return None;
        }
        diags.error(
            section.position(),
            format!(
                "vrrp_script {name} has no script; expected `script \"/path/to/check\"` in its block"
            ),
        );
        return None;
    };
    Some(VrrpScript {
        name,
        script,
        interval,
        timeout: timeout.unwrap_or(interval),
        weight,
        weight_reverse,
        rise,
        fall,
        user,
        init_fail,
        position: section.position().clone(),
    })
}

/// `weight N [reverse]` inside a script or track-file definition.
pub(super) fn read_weight(
    s: &Statement,
    lo: i32,
    hi: i32,
    diags: &mut Diagnostics,
) -> Option<(i32, bool)> {
    no_block(s, diags);
    warn_extra(s, 2, diags);
    let t = first_arg(s, &format!("weight {lo}..{hi} [reverse]"), diags)?;
    let weight = i32_in(t, "weight", lo, hi, diags)?;
    let reverse = match s.args.get(1) {
        None => false,
        Some(r) if r.text == "reverse" => true,
        Some(r) => {
            diags.error(
                &r.position,
                format!(
                    "\"{}\" after weight is not known; expected `reverse`",
                    r.text
                ),
            );
            false
        }
    };
    Some((weight, reverse))
}

fn read_track_file(section: &Statement, diags: &mut Diagnostics) -> Option<TrackFile> {
    let name = section_name(section, diags);
    let body = block(section, diags)?;
    let name = name?;
    let mut file = None;
    let mut weight = 1;
    let mut weight_reverse = false;
    let mut init_file = None;
    for s in &body.statements {
        match s.name() {
            "file" => {
                if let Some(t) = single_arg(s, "file \"/path/to/file\"", diags) {
                    file = Some(t.text.clone());
                }
            }
            "weight" => {
                if let Some((w, r)) = read_weight(s, -2_147_483_647, 2_147_483_647, diags) {
                    weight = w;
                    weight_reverse = r;
                }
            }
            "init_file" => {
                no_block(s, diags);
                warn_extra(s, 2, diags);
                let mut value = 0;
                let mut overwrite = false;
                for (index, t) in s.args.iter().take(2).enumerate() {
                    if t.text == "overwrite" {
                        overwrite = true;
                    } else if index == 0 {
                        value = int_in(t, "init_file value", -2_147_483_648, 2_147_483_647, diags)
                            .unwrap_or(0);
                    } else {
                        diags.error(
                            &t.position,
                            format!(
                                "\"{}\" is not known here; expected `init_file [VALUE] [overwrite]`",
                                t.text
                            ),
                        );
                    }
                }
                init_file = Some(InitFile { value, overwrite });
            }
            _ => unknown_keyword(s, section.name(), diags),
        }
    }
    let Some(file) = file else {
        diags.error(
            section.position(),
            format!(
                "{} {name} has no file; expected `file \"/path/to/file\"` in its block",
                section.name()
            ),
        );
        return None;
    };
    Some(TrackFile {
        name,
        file,
        weight,
        weight_reverse,
        init_file,
        position: section.position().clone(),
    })
}

/// What an instance said, before defaults from global_defs are applied.
#[derive(Default)]
struct InstanceDraft {
    state: Option<InitialState>,
    interface: Option<String>,
    virtual_router_id: Option<u8>,
    priority: Option<u8>,
    advert_int: Option<Duration>,
    version: Option<Version>,
    preempt: Option<bool>,
    preempt_delay: Option<Duration>,
    accept: Option<bool>,
    strict_mode: Option<bool>,
    garp: GarpSettings,
    garp_set: Vec<&'static str>,
    lower_prio_no_advert: Option<bool>,
    higher_prio_send_advert: Option<bool>,
    authentication: Option<Authentication>,
    virtual_ipaddress: Vec<VirtualAddress>,
    virtual_ipaddress_excluded: Vec<VirtualAddress>,
    virtual_routes: Vec<VirtualRoute>,
    track_script: Vec<TrackRef>,
    track_interface: Vec<TrackRef>,
    track_file: Vec<TrackRef>,
    track_process: Vec<TrackRef>,
    unicast_src_ip: Option<IpAddr>,
    unicast_peer: Vec<UnicastPeer>,
    unicast_ttl: Option<(u8, Position)>,
    check_unicast_src: bool,
    unicast_fault_no_peer: bool,
    /// Where the first keyword keepalived counts as "unicast configured" is.
    unicast_at: Option<Position>,
    unicast_src_at: Option<Position>,
    mcast_src_ip: Option<IpAddr>,
    notify_master: Option<Notify>,
    notify_backup: Option<Notify>,
    notify_fault: Option<Notify>,
    notify_stop: Option<Notify>,
    notify: Option<Notify>,
    notify_master_rx_lower_pri: Option<Notify>,
    smtp_alert: Option<bool>,
    use_vmac: Option<Option<String>>,
    vmac_xmit_base: Option<Position>,
    old_unicast_checksum: Option<UnicastChecksumCompat>,
    v3_checksum_as_v2: Option<bool>,
    interface_at: Option<Position>,
    vrid_at: Option<Position>,
    advert_at: Option<Position>,
    version_at: Option<Position>,
    auth_at: Option<Position>,
    strict_at: StrictPositions,
}

const GARP_KEYS: &[&str] = &[
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "garp_master_refresh_repeat",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
];

fn read_instance(
    section: &Statement,
    global: &GlobalDefs,
    diags: &mut Diagnostics,
) -> Option<VrrpInstance> {
    let name = section_name(section, diags);
    let body = block(section, diags)?;
    let name = name?;
    let mut d = InstanceDraft {
        garp: global.garp.clone(),
        ..InstanceDraft::default()
    };
    let owner = format!("vrrp_instance {name}");
    for s in &body.statements {
        read_instance_statement(s, &owner, &mut d, diags);
    }
    Some(finish_instance(name, section, d, global, diags))
}

fn read_instance_statement(
    s: &Statement,
    owner: &str,
    d: &mut InstanceDraft,
    diags: &mut Diagnostics,
) {
    let key = s.name();
    match key {
        "state" => {
            if let Some(t) = single_arg(s, "state MASTER|BACKUP", diags) {
                d.strict_at.state = Some(t.position.clone());
                match t.text.as_str() {
                    "MASTER" => d.state = Some(InitialState::Master),
                    "BACKUP" => d.state = Some(InitialState::Backup),
                    other => diags.error(
                        &t.position,
                        format!("state \"{other}\" is not known; expected MASTER or BACKUP"),
                    ),
                }
            }
        }
        "interface" => {
            if let Some(t) = single_arg(s, "interface NAME", diags) {
                d.interface = interface_name(t, diags);
                d.interface_at = Some(t.position.clone());
            }
        }
        "virtual_router_id" => {
            if let Some(t) = single_arg(s, "virtual_router_id 1-255", diags) {
                d.virtual_router_id = u8_in(t, key, 1, 255, diags);
                d.vrid_at = Some(t.position.clone());
            }
        }
        "priority" => {
            if let Some(t) = single_arg(s, "priority 1-255", diags) {
                d.priority = u8_in(t, key, 1, 255, diags);
            }
        }
        "advert_int" => {
            if let Some(t) = single_arg(s, "advert_int SECONDS", diags) {
                d.advert_int = seconds_in(t, key, 0.01, 255.0, diags);
                d.advert_at = Some(t.position.clone());
            }
        }
        "version" => {
            if let Some(t) = single_arg(s, "version 2|3", diags) {
                d.version = version(t, key, diags);
                d.version_at = Some(t.position.clone());
            }
        }
        "nopreempt" => {
            bare(s, diags);
            d.preempt = Some(false);
        }
        // keepalived >= 2.2.8, optional <BOOL>: send the RFC 9568
        // VRRPv3-over-IPv4 checksum, without the pseudo-header. Overrides
        // the global_defs default either way.
        "v3_checksum_as_v2" => {
            no_block(s, diags);
            if let Some(v) = flag(s, diags) {
                d.v3_checksum_as_v2 = Some(v);
            }
        }
        "preempt" => {
            bare(s, diags);
            d.preempt = Some(true);
        }
        "preempt_delay" => {
            if let Some(t) = single_arg(s, "preempt_delay SECONDS", diags) {
                d.strict_at.preempt_delay = Some(t.position.clone());
                d.preempt_delay = seconds_in(t, key, 0.0, 1000.0, diags);
            }
        }
        "accept" => {
            bare(s, diags);
            d.accept = Some(true);
            d.strict_at.accept = Some(s.position().clone());
        }
        "no_accept" => {
            bare(s, diags);
            d.accept = Some(false);
        }
        "strict_mode" => {
            no_block(s, diags);
            d.strict_mode = flag(s, diags);
        }
        "lower_prio_no_advert" => {
            no_block(s, diags);
            d.lower_prio_no_advert = flag(s, diags);
            d.strict_at.lower_prio_no_advert = Some(s.position().clone());
        }
        "higher_prio_send_advert" => {
            no_block(s, diags);
            d.higher_prio_send_advert = flag(s, diags);
            d.strict_at.higher_prio_send_advert = Some(s.position().clone());
        }
        k if GARP_KEYS.contains(&k) => {
            if read_garp(s, k, &mut d.garp, diags)
                && let Some(known) = GARP_KEYS.iter().find(|g| **g == k)
            {
                d.garp_set.push(known);
                match k {
                    "garp_lower_prio_delay" => {
                        d.strict_at.lower_prio_delay = Some(s.position().clone())
                    }
                    "garp_lower_prio_repeat" => {
                        d.strict_at.lower_prio_repeat = Some(s.position().clone())
                    }
                    _ => {}
                }
            }
        }
        "authentication" => {
            no_args(s, diags);
            d.auth_at = Some(s.position().clone());
            d.authentication = read_authentication(s, diags);
        }
        "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
            no_args(s, diags);
            if let Some(body) = block(s, diags) {
                let addresses = body
                    .statements
                    .iter()
                    .filter_map(|line| read_virtual_address(line, diags));
                if key == "virtual_ipaddress" {
                    d.virtual_ipaddress.extend(addresses);
                } else {
                    d.virtual_ipaddress_excluded.extend(addresses);
                }
            }
        }
        "virtual_routes" => {
            no_args(s, diags);
            if let Some(body) = block(s, diags) {
                d.virtual_routes.extend(
                    body.statements
                        .iter()
                        .filter_map(|line| read_route(line, diags)),
                );
            }
        }
        "track_script" => d.track_script.extend(read_track_refs(s, 253, diags)),
        "track_interface" => d.track_interface.extend(read_track_refs(s, 253, diags)),
        "track_file" => d.track_file.extend(read_track_refs(s, 254, diags)),
        "track_process" => d.track_process.extend(read_track_refs(s, 254, diags)),
        "unicast_src_ip" => {
            d.unicast_at.get_or_insert_with(|| s.position().clone());
            if let Some(t) = single_arg(s, "unicast_src_ip ADDRESS", diags) {
                d.unicast_src_ip = ip(t, key, diags);
                d.unicast_src_at = Some(t.position.clone());
            }
        }
        "unicast_ttl" => {
            // keepalived takes 0, which the kernel refuses as a TTL.
            if let Some(t) = single_arg(s, "unicast_ttl 1-255", diags)
                && let Some(ttl) = u8_in(t, key, 1, 255, diags)
            {
                d.unicast_ttl = Some((ttl, s.position().clone()));
            }
        }
        "check_unicast_src" => {
            bare(s, diags);
            d.unicast_at.get_or_insert_with(|| s.position().clone());
            d.check_unicast_src = true;
        }
        "unicast_fault_no_peer" => {
            bare(s, diags);
            d.unicast_at.get_or_insert_with(|| s.position().clone());
            d.unicast_fault_no_peer = true;
        }
        "mcast_src_ip" => {
            if let Some(t) = single_arg(s, "mcast_src_ip ADDRESS", diags) {
                d.mcast_src_ip = ip(t, key, diags);
            }
        }
        "unicast_peer" => {
            no_args(s, diags);
            d.unicast_at.get_or_insert_with(|| s.position().clone());
            d.strict_at.unicast_peer = Some(s.position().clone());
            if let Some(body) = block(s, diags) {
                d.unicast_peer.extend(
                    body.statements
                        .iter()
                        .filter_map(|line| read_unicast_peer(line, diags)),
                );
            }
        }
        "notify_master" => d.notify_master = notify(s, owner, diags),
        "notify_backup" => d.notify_backup = notify(s, owner, diags),
        "notify_fault" => d.notify_fault = notify(s, owner, diags),
        "notify_stop" => d.notify_stop = notify(s, owner, diags),
        "notify" => d.notify = notify(s, owner, diags),
        "notify_master_rx_lower_pri" => {
            d.notify_master_rx_lower_pri = notify(s, owner, diags);
        }
        "smtp_alert" => {
            no_block(s, diags);
            d.smtp_alert = flag(s, diags);
        }
        "use_vmac" => {
            no_block(s, diags);
            d.use_vmac = Some(read_use_vmac(s, diags));
        }
        "vmac_xmit_base" => {
            bare(s, diags);
            d.vmac_xmit_base = Some(s.position().clone());
        }
        "use_vmac_addr" => diags.warning(
            s.position(),
            "use_vmac_addr is read and ignored: vrrp-agent creates no macvlan interfaces; addresses on other interfaces keep those interfaces' MAC",
        ),
        "old_unicast_checksum" => {
            d.unicast_at.get_or_insert_with(|| s.position().clone());
            no_block(s, diags);
            warn_extra(s, 1, diags);
            d.old_unicast_checksum = match s.args.first() {
                None => Some(UnicastChecksumCompat::Old),
                Some(t) if t.text == "never" => {
                    diags.warning(
                        &t.position,
                        "old_unicast_checksum never is read and ignored: vrrp-agent still accepts pre-1.3.6 unicast checksums from peers",
                    );
                    Some(UnicastChecksumCompat::Never)
                }
                Some(t) => {
                    diags.error(
                        &t.position,
                        format!(
                            "old_unicast_checksum mode \"{}\" is not known; expected nothing or `never`",
                            t.text
                        ),
                    );
                    None
                }
            };
        }
        _ => unknown_keyword(s, "vrrp_instance", diags),
    }
}

fn finish_instance(
    name: String,
    section: &Statement,
    d: InstanceDraft,
    global: &GlobalDefs,
    diags: &mut Diagnostics,
) -> VrrpInstance {
    let family = d
        .virtual_ipaddress
        .first()
        .map(|v| v.address)
        .or(d.unicast_src_ip)
        .or(d.mcast_src_ip)
        .or(d.unicast_peer.first().map(|p| p.address))
        .map(|a| AddressFamily::of(&a))
        .unwrap_or(AddressFamily::Ipv4);
    let mut version = d.version.unwrap_or(global.vrrp_version);
    if family == AddressFamily::Ipv6 && version == Version::V2 {
        // VRRPv2 has no IPv6; keepalived switches such instances to v3.
        if let Some(at) = &d.version_at {
            diags.warning(
                at,
                format!("vrrp_instance {name} has IPv6 addresses, which VRRP version 2 cannot carry; using version 3"),
            );
        }
        version = Version::V3;
    }
    let mut authentication = d.authentication;
    if version == Version::V3
        && authentication.is_some()
        && let Some(at) = &d.auth_at
    {
        diags.warning(
            at,
            format!("vrrp_instance {name} runs VRRP version 3, which has no authentication; authentication ignored"),
        );
        authentication = None;
    }
    let strict_mode = d.strict_mode.unwrap_or(global.vrrp_strict);
    // An instance's lower-priority GARP settings default to the global
    // ones (themselves defaulting to the global master ones), never to the
    // instance's own `garp_master_*`: keepalived's vrrp_complete_instance.
    let garp = d.garp;
    let virtual_router_id = d.virtual_router_id.unwrap_or(0);
    // keepalived derives each of state and priority from the other when
    // only one is written: MASTER means the address owner (255), and 255
    // means MASTER.
    let priority = d.priority.unwrap_or(match d.state {
        Some(InitialState::Master) => 255,
        _ => 100,
    });
    let state = d.state.unwrap_or(if priority == 255 {
        InitialState::Master
    } else {
        InitialState::Backup
    });
    let name_for_ttl = name.clone();
    let vmac_xmit_base = vmac_xmit_base(
        &name,
        d.vmac_xmit_base.as_ref(),
        d.use_vmac.is_some(),
        (!d.unicast_peer.is_empty()).then_some(d.interface_at.as_ref()),
        strict_mode,
        diags,
    );
    let use_vmac = d
        .use_vmac
        .map(|n| n.unwrap_or_else(|| format!("vrrp.{virtual_router_id}")));
    let mut instance = VrrpInstance {
        name,
        state,
        interface: d.interface.unwrap_or_default(),
        virtual_router_id,
        priority,
        advert_int: d.advert_int.unwrap_or(Duration::from_secs(1)),
        version,
        family,
        preempt: d.preempt.unwrap_or(true),
        preempt_delay: d.preempt_delay.unwrap_or(Duration::ZERO),
        accept: d
            .accept
            .unwrap_or_else(|| strict::default_accept(strict_mode, priority)),
        strict_mode,
        garp,
        lower_prio_no_advert: d
            .lower_prio_no_advert
            .unwrap_or(global.vrrp_lower_prio_no_advert),
        higher_prio_send_advert: d
            .higher_prio_send_advert
            .unwrap_or(global.vrrp_higher_prio_send_advert),
        authentication,
        virtual_ipaddress: d.virtual_ipaddress,
        virtual_ipaddress_excluded: d.virtual_ipaddress_excluded,
        virtual_routes: d.virtual_routes,
        track_script: d.track_script,
        track_interface: d.track_interface,
        track_file: d.track_file,
        track_process: d.track_process,
        unicast_src_ip: d.unicast_src_ip,
        check_unicast_src: !d.unicast_peer.is_empty()
            && (d.check_unicast_src
                || global.vrrp_check_unicast_src
                || d.unicast_peer
                    .iter()
                    .any(|peer| peer.min_ttl.is_some() || peer.max_ttl.is_some())),
        unicast_ttl: unicast_ttl(&name_for_ttl, d.unicast_ttl, &d.unicast_peer, diags),
        unicast_fault_no_peer: d.unicast_fault_no_peer,
        unicast_without_peers: d.unicast_peer.is_empty() && d.unicast_at.is_some(),
        unicast_peer: d.unicast_peer,
        mcast_src_ip: d.mcast_src_ip,
        notify_master: d.notify_master,
        notify_backup: d.notify_backup,
        notify_fault: d.notify_fault,
        notify_stop: d.notify_stop,
        notify: d.notify,
        notify_master_rx_lower_pri: d.notify_master_rx_lower_pri,
        smtp_alert: d.smtp_alert.unwrap_or(global.smtp_alert),
        use_vmac,
        vmac_xmit_base,
        old_unicast_checksum: d
            .old_unicast_checksum
            .unwrap_or(UnicastChecksumCompat::Auto),
        v3_checksum_as_v2: d.v3_checksum_as_v2.unwrap_or(global.v3_checksum_as_v2),
        positions: InstancePositions {
            name: section
                .args
                .first()
                .map(|t| t.position.clone())
                .unwrap_or_else(|| section.position().clone()),
            interface: d.interface_at,
            virtual_router_id: d.vrid_at,
            advert_int: d.advert_at,
            version: d.version_at,
            authentication: d.auth_at,
            unicast_src_ip: d.unicast_src_at,
        },
    };
    super::unicast::check(&instance, d.unicast_at.as_ref(), diags);
    strict::enforce(&mut instance, &d.strict_at, diags);
    instance
}

/// `use_vmac [[name] NAME] [MAC] [netlink_notify_msg] [group GROUP]`:
/// keepalived's options all shape the macvlan it creates, which vrrp-agent
/// does not (the kernel programs use the virtual MAC on the instance's own
/// interface); each is accepted with a warning. Returns the name.
fn read_use_vmac(s: &Statement, diags: &mut Diagnostics) -> Option<String> {
    let mut name = None;
    let mut args = s.args.iter().peekable();
    while let Some(t) = args.next() {
        match t.text.as_str() {
            "netlink_notify_msg" => diags.warning(
                &t.position,
                "use_vmac netlink_notify_msg is read and ignored: vrrp-agent creates no macvlan interface",
            ),
            "group" => {
                args.next();
                diags.warning(
                    &t.position,
                    "use_vmac group is read and ignored: vrrp-agent creates no macvlan interface",
                );
            }
            text if is_mac_address(text) => diags.warning(
                &t.position,
                format!(
                    "use_vmac MAC address {text} is read and ignored: vrrp-agent uses the RFC 5798 virtual MAC 00:00:5e:00:01|02:VRID"
                ),
            ),
            "name" if args.peek().is_some() => {
                name = args.next().and_then(|t| interface_name(t, diags));
            }
            _ => name = interface_name(t, diags),
        }
    }
    if let Some(name) = &name {
        diags.warning(
            s.position(),
            format!(
                "use_vmac: no macvlan interface \"{name}\" is created; vrrp-agent answers with the virtual MAC on the instance's own interface"
            ),
        );
    }
    name
}

/// keepalived's five-or-six-octet MAC syntax (`00:00:5e:00:01[:VRID]`).
fn is_mac_address(text: &str) -> bool {
    let octets: Vec<&str> = text.split(':').collect();
    (octets.len() == 5 || octets.len() == 6)
        && octets
            .iter()
            .all(|o| (1..=2).contains(&o.len()) && o.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether the instance's adverts keep the interface's MAC, with
/// keepalived's corrections: it needs `use_vmac`, strict mode clears it,
/// and unicast peers set it (unicast adverts leave from the base
/// interface in keepalived).
/// `unicast` holds where the interface was named when the instance has
/// unicast peers.
fn vmac_xmit_base(
    name: &str,
    configured: Option<&Position>,
    use_vmac: bool,
    unicast: Option<Option<&Position>>,
    strict_mode: bool,
    diags: &mut Diagnostics,
) -> bool {
    match configured {
        Some(at) if !use_vmac => {
            diags.warning(
                at,
                format!(
                    "vrrp_instance {name}: vmac_xmit_base is only valid with use_vmac; ignored"
                ),
            );
            false
        }
        Some(at) if strict_mode => {
            diags.warning(
                at,
                format!(
                    "vrrp_instance {name}: vmac_xmit_base is incompatible with strict mode; ignored"
                ),
            );
            false
        }
        Some(_) => true,
        None if use_vmac && unicast.is_some() && !strict_mode => {
            if let Some(Some(at)) = unicast {
                diags.warning(
                    at,
                    format!("vrrp_instance {name}: unicast with use_vmac requires vmac_xmit_base; setting it"),
                );
            }
            true
        }
        None => false,
    }
}

fn read_authentication(s: &Statement, diags: &mut Diagnostics) -> Option<Authentication> {
    let body = block(s, diags)?;
    let mut auth_type = None;
    let mut auth_pass = None;
    for entry in &body.statements {
        match entry.name() {
            "auth_type" => {
                if let Some(t) = single_arg(entry, "auth_type PASS|AH", diags) {
                    match t.text.as_str() {
                        "PASS" => auth_type = Some(AuthType::Pass),
                        "AH" => auth_type = Some(AuthType::Ah),
                        other => diags.error(
                            &t.position,
                            format!("auth_type \"{other}\" is not known; expected PASS or AH"),
                        ),
                    }
                }
            }
            "auth_pass" => {
                if let Some(t) = single_arg(entry, "auth_pass PASSWORD", diags) {
                    let mut pass = t.text.clone();
                    if pass.chars().count() > 8 {
                        pass = pass.chars().take(8).collect();
                        diags.warning(
                            &t.position,
                            format!(
                                "auth_pass is longer than 8 characters; only \"{pass}\" is used, as keepalived does"
                            ),
                        );
                    }
                    if pass.len() > 8 {
                        // The wire field is 8 bytes; multi-byte characters
                        // would not fit even after keepalived's cut.
                        diags.error(
                            &t.position,
                            "auth_pass does not fit the 8-byte field; expected at most 8 ASCII characters",
                        );
                    }
                    auth_pass = Some(pass);
                }
            }
            _ => unknown_keyword(entry, "authentication", diags),
        }
    }
    match (auth_type, auth_pass) {
        (Some(auth_type), Some(auth_pass)) => Some(Authentication {
            auth_type,
            auth_pass,
        }),
        (Some(_), None) => {
            diags.error(
                s.position(),
                "authentication has auth_type but no auth_pass; expected `auth_pass PASSWORD`",
            );
            None
        }
        (None, Some(_)) => {
            diags.error(
                s.position(),
                "authentication has auth_pass but no auth_type; expected `auth_type PASS` or `auth_type AH`",
            );
            None
        }
        (None, None) => None,
    }
}

/// `<ip>[/len] [brd <ip>|+|-] [dev <if>] [scope <scope>] [label <label>] ...`
fn read_virtual_address(line: &Statement, diags: &mut Diagnostics) -> Option<VirtualAddress> {
    no_block(line, diags);
    let (address, prefix_len) = prefix(&line.keyword, "virtual address", diags)?;
    let mut vip = VirtualAddress {
        address,
        prefix_len,
        brd: None,
        dev: None,
        scope: None,
        label: None,
        no_track: false,
        position: line.position().clone(),
    };
    let mut ok = true;
    let mut words = line.args.iter();
    while let Some(option) = words.next() {
        let o = option.text.as_str();
        let takes_value = matches!(
            o,
            "brd" | "dev" | "scope" | "label" | "peer" | "preferred_lft" | "track_group"
        );
        let value = if takes_value {
            let v = words.next();
            if v.is_none() {
                diags.error(
                    &option.position,
                    format!("{o} needs a value; expected `{o} VALUE`"),
                );
                ok = false;
                break;
            }
            v
        } else {
            None
        };
        match (o, value) {
            ("brd", Some(v)) => {
                vip.brd = match v.text.as_str() {
                    "+" => Some(Broadcast::HostBitsSet),
                    "-" => Some(Broadcast::HostBitsCleared),
                    _ => match ip(v, "brd", diags) {
                        Some(a) => Some(Broadcast::Address(a)),
                        None => {
                            ok = false;
                            None
                        }
                    },
                };
            }
            ("dev", Some(v)) => {
                vip.dev = interface_name(v, diags);
                ok &= vip.dev.is_some();
            }
            ("scope", Some(v)) => {
                vip.scope = scope(v, diags);
                ok &= vip.scope.is_some();
            }
            ("label", Some(v)) => vip.label = Some(v.text.clone()),
            ("no_track", _) => vip.no_track = true,
            ("peer" | "preferred_lft" | "track_group", _)
            | (
                "use_vmac" | "home" | "-nodad" | "nodad" | "mngtmpaddr" | "noprefixroute"
                | "autojoin",
                _,
            ) => diags.warning(
                &option.position,
                format!("virtual address option \"{o}\" is not supported by vrrp-agent; ignored"),
            ),
            _ => {
                diags.error(
                    &option.position,
                    format!(
                        "virtual address option \"{o}\" is not known; expected brd, dev, scope, label or no_track"
                    ),
                );
                ok = false;
                break;
            }
        }
    }
    ok.then_some(vip)
}

/// The common subset of keepalived's route syntax:
/// `[TYPE] [src ADDR] [to] PREFIX [via|gw ADDR] [dev IF] [scope S] [metric N] [table T]`.
fn read_route(line: &Statement, diags: &mut Diagnostics) -> Option<VirtualRoute> {
    no_block(line, diags);
    let words: Vec<&super::lexer::Token> = std::iter::once(&line.keyword)
        .chain(line.args.iter())
        .collect();
    let mut route_type = RouteType::Unicast;
    let mut src = None;
    let mut to = None;
    let mut via = None;
    let mut dev = None;
    let mut route_scope = None;
    let mut metric = None;
    let mut table = None;
    let mut no_track = false;
    let mut ok = true;
    let mut i = 0;
    while let Some(word) = words.get(i) {
        let w = word.text.as_str();
        let value = words.get(i + 1);
        let needs_value = matches!(
            w,
            "src"
                | "to"
                | "via"
                | "gw"
                | "dev"
                | "scope"
                | "metric"
                | "priority"
                | "preference"
                | "table"
        );
        if needs_value && value.is_none() {
            diags.error(
                &word.position,
                format!("route option {w} needs a value; expected `{w} VALUE`"),
            );
            ok = false;
            break;
        }
        match (w, value) {
            ("blackhole" | "unreachable" | "prohibit" | "unicast", _) if i == 0 => {
                route_type = match w {
                    "blackhole" => RouteType::Blackhole,
                    "unreachable" => RouteType::Unreachable,
                    "prohibit" => RouteType::Prohibit,
                    _ => RouteType::Unicast,
                };
            }
            ("src", Some(v)) => {
                src = ip(v, "route src", diags);
                ok &= src.is_some();
                i += 1;
            }
            ("to", Some(v)) => {
                to = prefix(v, "route destination", diags);
                ok &= to.is_some();
                i += 1;
            }
            ("via" | "gw", Some(v)) => {
                via = ip(v, "route gateway", diags);
                ok &= via.is_some();
                i += 1;
            }
            ("dev", Some(v)) => {
                dev = interface_name(v, diags);
                ok &= dev.is_some();
                i += 1;
            }
            ("scope", Some(v)) => {
                route_scope = scope(v, diags);
                ok &= route_scope.is_some();
                i += 1;
            }
            ("metric" | "priority" | "preference", Some(v)) => {
                metric = u32_in(v, "route metric", 0, u32::MAX, diags);
                ok &= metric.is_some();
                i += 1;
            }
            ("table", Some(v)) => {
                table = match v.text.as_str() {
                    "main" => Some(254),
                    "local" => Some(255),
                    "default" => Some(253),
                    _ => u32_in(v, "route table", 1, u32::MAX, diags),
                };
                ok &= table.is_some();
                i += 1;
            }
            ("no_track", _) => no_track = true,
            ("inet6", _) => {}
            _ if to.is_none() && w.chars().next().is_some_and(|c| c.is_ascii_hexdigit()) => {
                to = prefix(word, "route destination", diags);
                ok &= to.is_some();
            }
            _ => {
                diags.error(
                    &word.position,
                    format!(
                        "route option \"{w}\" is not supported; expected [src ADDR] [to] PREFIX [via|gw ADDR] [dev IF] [scope S] [metric N] [table T]"
                    ),
                );
                ok = false;
                break;
            }
        }
        i += 1;
    }
    if !ok {
        return None;
    }
    let Some((destination, prefix_len)) = to else {
        diags.error(
            line.position(),
            "route has no destination; expected a PREFIX such as 192.0.2.0/24",
        );
        return None;
    };
    let family = AddressFamily::of(&destination);
    for (what, address) in [("src", src), ("gateway", via)] {
        if let Some(a) = address
            && AddressFamily::of(&a) != family
        {
            diags.error(
                line.position(),
                format!(
                    "route {what} {a} is not of the same address family as destination {destination}; expected matching families"
                ),
            );
            return None;
        }
    }
    Some(VirtualRoute {
        route_type,
        src,
        to: destination,
        prefix_len,
        via,
        dev,
        scope: route_scope,
        metric,
        table,
        no_track,
        position: line.position().clone(),
    })
}

/// Entries of `track_script {}` etc.: `NAME [weight N [reverse|noreverse]]`.
fn read_track_refs(s: &Statement, limit: i32, diags: &mut Diagnostics) -> Vec<TrackRef> {
    no_args(s, diags);
    let Some(body) = block(s, diags) else {
        return Vec::new();
    };
    let mut refs = Vec::new();
    for entry in &body.statements {
        no_block(entry, diags);
        let mut weight = None;
        let mut reverse = false;
        let mut ok = true;
        let mut words = entry.args.iter();
        while let Some(w) = words.next() {
            match w.text.as_str() {
                "weight" => match words.next() {
                    Some(v) => {
                        weight = i32_in(v, "weight", -limit, limit, diags);
                        ok &= weight.is_some();
                    }
                    None => {
                        diags.error(
                            &w.position,
                            format!("weight needs a value; expected `weight -{limit}..{limit}`"),
                        );
                        ok = false;
                    }
                },
                "reverse" => reverse = true,
                "noreverse" | "no_reverse" => reverse = false,
                other => {
                    diags.error(
                        &w.position,
                        format!(
                            "\"{other}\" is not known in {}; expected `NAME [weight N] [reverse]`",
                            s.name()
                        ),
                    );
                    ok = false;
                }
            }
        }
        if ok {
            refs.push(TrackRef {
                name: entry.keyword.text.clone(),
                weight,
                reverse,
                position: entry.position().clone(),
            });
        }
    }
    refs
}

fn read_unicast_peer(line: &Statement, diags: &mut Diagnostics) -> Option<UnicastPeer> {
    no_block(line, diags);
    let address = ip(&line.keyword, "unicast peer", diags)?;
    let mut peer = UnicastPeer {
        address,
        min_ttl: None,
        max_ttl: None,
    };
    let mut words = line.args.iter();
    while let Some(w) = words.next() {
        let key = w.text.as_str();
        match (key, words.next()) {
            ("min_ttl" | "max_ttl", Some(v)) => {
                let ttl = u8_in(v, key, 0, 255, diags)?;
                if key == "min_ttl" {
                    peer.min_ttl = Some(ttl);
                } else {
                    peer.max_ttl = Some(ttl);
                }
            }
            _ => {
                diags.error(
                    &w.position,
                    format!("unicast peer option \"{key}\" is not valid here; expected `ADDRESS [min_ttl N] [max_ttl N]`"),
                );
                return None;
            }
        }
    }
    if let (Some(min), Some(max)) = (peer.min_ttl, peer.max_ttl)
        && min > max
    {
        diags.warning(
            line.position(),
            format!(
                "unicast peer {address}: min_ttl {min} > max_ttl {max}, so every advert from it is dropped; expected min_ttl <= max_ttl"
            ),
        );
    }
    Some(peer)
}

/// keepalived ignores `unicast_ttl` on an instance without unicast peers.
fn unicast_ttl(
    name: &str,
    ttl: Option<(u8, Position)>,
    peers: &[UnicastPeer],
    diags: &mut Diagnostics,
) -> Option<u8> {
    let (ttl, at) = ttl?;
    if peers.is_empty() {
        diags.warning(
            &at,
            format!(
                "vrrp_instance {name}: unicast_ttl without unicast peers is ignored; expected a unicast_peer block"
            ),
        );
        return None;
    }
    Some(ttl)
}

fn read_sync_group(
    section: &Statement,
    global: &GlobalDefs,
    diags: &mut Diagnostics,
) -> Option<SyncGroup> {
    let name = section_name(section, diags);
    let body = block(section, diags)?;
    let name = name?;
    let mut group = SyncGroup {
        name,
        group: Vec::new(),
        notify_master: None,
        notify_backup: None,
        notify_fault: None,
        notify_stop: None,
        notify: None,
        smtp_alert: global.smtp_alert,
        track_script: Vec::new(),
        track_interface: Vec::new(),
        track_file: Vec::new(),
        track_process: Vec::new(),
        tracking_weight: false,
        position: section.position().clone(),
        member_positions: Vec::new(),
    };
    let owner = format!("vrrp_sync_group {}", group.name);
    for s in &body.statements {
        match s.name() {
            "group" => {
                no_args(s, diags);
                for member in list_words(s, diags) {
                    group.group.push(member.text.clone());
                    group.member_positions.push(member.position.clone());
                }
            }
            "notify_master" => group.notify_master = notify(s, &owner, diags),
            "notify_backup" => group.notify_backup = notify(s, &owner, diags),
            "notify_fault" => group.notify_fault = notify(s, &owner, diags),
            "notify_stop" => group.notify_stop = notify(s, &owner, diags),
            "notify" => group.notify = notify(s, &owner, diags),
            "track_script" => group.track_script.extend(read_track_refs(s, 253, diags)),
            "track_interface" => group.track_interface.extend(read_track_refs(s, 253, diags)),
            "track_file" => group.track_file.extend(read_track_refs(s, 254, diags)),
            "track_process" => group.track_process.extend(read_track_refs(s, 254, diags)),
            "sync_group_tracking_weight" => {
                no_args(s, diags);
                no_block(s, diags);
                group.tracking_weight = true;
            }
            "global_tracking" => {
                no_args(s, diags);
                no_block(s, diags);
                diags.warning(
                    s.position(),
                    format!(
                        "vrrp_sync_group {}: global_tracking is deprecated; it acts as sync_group_tracking_weight (members keep their weighted tracking), and track_script/track_interface/track_file in the group replace it",
                        group.name
                    ),
                );
                group.tracking_weight = true;
            }
            "smtp_alert" => {
                no_block(s, diags);
                if let Some(v) = flag(s, diags) {
                    group.smtp_alert = v;
                }
            }
            _ => unknown_keyword(s, "vrrp_sync_group", diags),
        }
    }
    Some(group)
}

#[cfg(test)]
mod read_and_ignored_tests {
    use crate::config::model::InitialState;
    use crate::config::parse_str;

    fn state_and_priority(lines: &str) -> (InitialState, u8) {
        let text = format!(
            "vrrp_instance a {{\n interface eth1\n virtual_router_id 1\n{lines}\n virtual_ipaddress {{ 192.0.2.1 }}\n}}\n"
        );
        let loaded = parse_str(&text, "k.conf").expect("valid");
        let a = &loaded.config.vrrp_instances[0];
        (a.state, a.priority)
    }

    /// keepalived's vrrp_complete_instance: an unwritten priority follows
    /// the state, an unwritten state follows the priority.
    #[test]
    fn state_and_priority_default_from_each_other() {
        assert_eq!(state_and_priority(""), (InitialState::Backup, 100));
        assert_eq!(
            state_and_priority(" state MASTER"),
            (InitialState::Master, 255)
        );
        assert_eq!(
            state_and_priority(" priority 255"),
            (InitialState::Master, 255)
        );
        assert_eq!(
            state_and_priority(" state MASTER\n priority 150"),
            (InitialState::Master, 150)
        );
        assert_eq!(
            state_and_priority(" state BACKUP\n priority 255"),
            (InitialState::Backup, 255)
        );
    }

    /// Keywords parsed for compatibility whose behaviour is not built yet
    /// must say so where they are written, never be silently inert.
    #[test]
    fn inert_keywords_warn_with_their_position() {
        let text = "\
global_defs {
 router_id a
 vrrp_version 2
}
vrrp_instance a {
 interface eth1
 virtual_router_id 1
 garp_lower_prio_repeat 4
 use_vmac_addr
 unicast_peer {
  192.0.2.2 min_ttl 250 max_ttl 255
 }
 virtual_ipaddress { 192.0.2.1 }
 old_unicast_checksum never
}
";
        let loaded = parse_str(text, "k.conf").expect("valid");
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        let expected = [
            "k.conf:9:2: use_vmac_addr is read and ignored",
            "k.conf:14:23: old_unicast_checksum never is read and ignored",
        ];
        for prefix in expected {
            assert!(
                warnings.iter().any(|w| w.starts_with(prefix)),
                "no warning starting `{prefix}` in {warnings:#?}"
            );
        }
        assert_eq!(warnings.len(), expected.len(), "{warnings:#?}");
    }
}
