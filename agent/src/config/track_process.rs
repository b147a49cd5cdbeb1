//! `vrrp_track_process`: read as keepalived's vrrp_parser reads it.
//!
//! keepalived reports some statements as errors yet keeps running without
//! them (a second `process`, a second non-zero `weight`, a `quorum` above
//! `quorum_max`): those are warnings here that say the statement is
//! ignored, so a file keepalived runs is not refused. Values that do not
//! parse or are out of range are errors, as everywhere else.

use std::time::Duration;

use super::diagnostic::Diagnostics;
use super::interpret::read_weight;
use super::lexer::Token;
use super::model::{ParamMatch, TrackProcess};
use super::parser::Statement;
use super::values::*;

/// The kernel keeps a process name (`/proc/PID/comm`) in 16 bytes with its
/// terminating NUL.
const COMM_MAX: usize = 15;

pub fn read_track_process(section: &Statement, diags: &mut Diagnostics) -> Option<TrackProcess> {
    let usage = "vrrp_track_process NAME { ... }";
    let name = first_arg(section, usage, diags).map(|t| t.text.clone());
    warn_extra(section, 1, diags);
    let body = block(section, diags)?;
    let name = name?;
    let owner = format!("vrrp_track_process {name}");
    let mut process: Option<(String, Vec<String>, &Token)> = None;
    let mut param_match = ParamMatch::None;
    let mut full_command = false;
    let mut weight = 0;
    let mut weight_reverse = false;
    let mut quorum: u32 = 1;
    let mut quorum_max: u32 = u32::MAX;
    let mut fork_delay = Duration::ZERO;
    let mut terminate_delay = Duration::ZERO;
    for s in &body.statements {
        let key = s.name();
        match key {
            "process" => {
                no_block(s, diags);
                let Some(first) = first_arg(s, "process NAME [PARAMETER ...]", diags) else {
                    continue;
                };
                if process.is_some() {
                    diags.warning(
                        &first.position,
                        format!("{owner}: process is already set; ignoring \"{}\" as keepalived does (one process per vrrp_track_process)", first.text),
                    );
                    continue;
                }
                let params: Vec<String> = s.args[1..].iter().map(|t| t.text.clone()).collect();
                if !params.is_empty() {
                    if param_match == ParamMatch::None {
                        param_match = ParamMatch::Exact;
                    }
                    full_command = true;
                }
                process = Some((first.text.clone(), params, first));
            }
            "param_match" => {
                no_block(s, diags);
                warn_extra(s, 1, diags);
                match s.args.first().map(|t| t.text.as_str()) {
                    None => param_match = ParamMatch::Exact,
                    Some("partial") => param_match = ParamMatch::Partial,
                    Some("initial") => param_match = ParamMatch::Initial,
                    Some(other) => {
                        diags.error(
                            &s.args[0].position,
                            format!("{owner}: param_match \"{other}\" is not known; expected `param_match`, `param_match partial` or `param_match initial`"),
                        );
                        continue;
                    }
                }
                full_command = true;
            }
            "weight" => {
                if weight != 0 {
                    no_block(s, diags);
                    warn_extra(s, 2, diags);
                    if let Some(t) = first_arg(s, "weight -254..254 [reverse]", diags) {
                        diags.warning(
                            &t.position,
                            format!("{owner}: weight is already set to {weight}; ignoring \"{}\" as keepalived does", t.text),
                        );
                    }
                    continue;
                }
                if let Some((w, reverse)) = read_weight(s, -254, 254, diags) {
                    weight = w;
                    weight_reverse = reverse;
                }
            }
            "quorum" => {
                let Some(t) = single_arg(s, "quorum 1..65535", diags) else {
                    continue;
                };
                let Some(q) = u32_in(t, "quorum", 1, 65535, diags) else {
                    continue;
                };
                if q > quorum_max {
                    diags.warning(
                        &t.position,
                        format!("{owner}: quorum {q} is greater than quorum_max {quorum_max}; ignored as keepalived does (write quorum before quorum_max)"),
                    );
                    continue;
                }
                quorum = q;
            }
            "quorum_max" => {
                let Some(t) = single_arg(s, "quorum_max 0..65535", diags) else {
                    continue;
                };
                let Some(q) = u32_in(t, "quorum_max", 0, 65535, diags) else {
                    continue;
                };
                // keepalived allows 0 ("fail while any runs") when quorum
                // was left at its default.
                if (q != 0 || quorum > 1) && q < quorum {
                    diags.warning(
                        &t.position,
                        format!("{owner}: quorum_max {q} is less than quorum {quorum}; ignored as keepalived does"),
                    );
                    continue;
                }
                quorum_max = q;
                if q == 0 {
                    quorum = 0;
                } else if quorum == 0 {
                    quorum = 1;
                }
            }
            "delay" | "fork_delay" | "terminate_delay" => {
                let Some(t) = single_arg(s, &format!("{key} SECONDS"), diags) else {
                    continue;
                };
                let Some(delay) = delay_seconds(t, key, diags) else {
                    continue;
                };
                if key != "fork_delay" {
                    terminate_delay = delay;
                }
                if key != "terminate_delay" {
                    fork_delay = delay;
                }
            }
            "full_command" => {
                bare(s, diags);
                full_command = true;
            }
            _ => unknown_keyword(s, "vrrp_track_process", diags),
        }
    }
    let Some((process, params, token)) = process else {
        diags.error(
            section.position(),
            format!("{owner} has no process; expected `process NAME [PARAMETER ...]` in its block"),
        );
        return None;
    };
    if !full_command && process.len() > COMM_MAX {
        diags.warning(
            &token.position,
            format!("{owner}: process \"{process}\" is longer than the {COMM_MAX} bytes the kernel keeps of a process name, so it never matches; add `full_command` to match the command line"),
        );
    }
    Some(TrackProcess {
        name,
        process,
        params,
        param_match,
        full_command,
        weight,
        weight_reverse,
        quorum,
        quorum_max,
        fork_delay,
        terminate_delay,
        position: section.position().clone(),
    })
}

/// keepalived reads the delays with microsecond resolution, 0.000001-3600.
fn delay_seconds(token: &Token, what: &str, diags: &mut Diagnostics) -> Option<Duration> {
    let text = token.text.as_str();
    let expected = "expected seconds 0.000001-3600 (at most six decimals)";
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = !text.is_empty()
        && digits(whole)
        && digits(fraction)
        && !(whole.is_empty() && fraction.is_empty())
        && fraction.len() <= 6;
    let micros = well_formed
        .then(|| {
            let mut padded = fraction.to_owned();
            while padded.len() < 6 {
                padded.push('0');
            }
            let whole = if whole.is_empty() {
                0
            } else {
                whole.parse::<u64>().ok()?
            };
            whole
                .checked_mul(1_000_000)?
                .checked_add(padded.parse::<u64>().ok()?)
        })
        .flatten();
    match micros {
        Some(us) if (1..=3_600_000_000).contains(&us) => Some(Duration::from_micros(us)),
        Some(_) => {
            diags.error(
                &token.position,
                format!("{what} \"{text}\" is out of range; {expected}"),
            );
            None
        }
        None => {
            diags.error(
                &token.position,
                format!("{what} \"{text}\" is not a number; {expected}"),
            );
            None
        }
    }
}

/// `process_monitor_rcv_bufs BYTES` and `process_monitor_rcv_bufs_force
/// [<BOOL>]` in global_defs; true when the statement was one of them.
pub fn read_global(
    s: &Statement,
    global: &mut super::model::GlobalDefs,
    diags: &mut Diagnostics,
) -> bool {
    match s.name() {
        "process_monitor_rcv_bufs" => {
            if let Some(t) = single_arg(s, "process_monitor_rcv_bufs BYTES", diags)
                && let Some(bytes) = u32_in(t, "process_monitor_rcv_bufs", 1, u32::MAX, diags)
            {
                global.process_monitor_rcv_bufs = Some(bytes);
            }
            true
        }
        "process_monitor_rcv_bufs_force" => {
            no_block(s, diags);
            if let Some(v) = flag(s, diags) {
                global.process_monitor_rcv_bufs_force = v;
            }
            true
        }
        _ => false,
    }
}

/// Whole-configuration checks of `vrrp_track_process` and the instances'
/// `track_process` entries (the sync groups' are checked as they are
/// applied to the members).
pub fn check(config: &mut super::model::Config, diags: &mut Diagnostics) {
    let mut seen: std::collections::HashMap<&str, &super::diagnostic::Position> =
        std::collections::HashMap::new();
    for process in &config.track_processes {
        if let Some(first) = seen.get(process.name.as_str()) {
            diags.error(
                &process.position,
                format!(
                    "vrrp_track_process {} is defined twice (first at {first}); expected unique names",
                    process.name
                ),
            );
        } else {
            seen.insert(&process.name, &process.position);
        }
    }
    let defined: Vec<String> = config
        .track_processes
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let weights: std::collections::HashMap<String, i32> = config
        .track_processes
        .iter()
        .map(|p| (p.name.clone(), p.weight))
        .collect();
    for instance in &mut config.vrrp_instances {
        let mut kept: Vec<super::model::TrackRef> = Vec::new();
        for reference in std::mem::take(&mut instance.track_process) {
            let Some(&own_weight) = weights.get(&reference.name) else {
                let known = if defined.is_empty() {
                    "none is defined".to_owned()
                } else {
                    format!("defined: {}", defined.join(", "))
                };
                diags.error(
                    &reference.position,
                    format!(
                        "track_process \"{}\" in vrrp_instance {} names no vrrp_track_process; expected the name of a vrrp_track_process ({known})",
                        reference.name, instance.name
                    ),
                );
                continue;
            };
            if let Some(first) = kept.iter().find(|r| r.name == reference.name) {
                diags.warning(
                    &reference.position,
                    format!(
                        "vrrp_instance {}: track_process \"{}\" is listed twice (first at {}); ignored as keepalived does",
                        instance.name, reference.name, first.position
                    ),
                );
                continue;
            }
            let mut reference = reference;
            let weight = reference.weight.unwrap_or(own_weight);
            if weight.abs() == 254 {
                diags.warning(
                    &reference.position,
                    format!(
                        "vrrp_instance {}: track_process \"{}\" has weight {weight}, read as {}: vrrp-agent's weights are -253..253, and the priority differs only while another weight applies at the same time",
                        instance.name,
                        reference.name,
                        weight.signum() * 253
                    ),
                );
                reference.weight = Some(weight.signum() * 253);
            }
            if instance.priority == 255 && reference.weight.unwrap_or(own_weight) != 0 {
                diags.warning(
                    &reference.position,
                    format!(
                        "vrrp_instance {}: track_process \"{}\" has a weight, which does nothing: the address owner's (priority 255) priority never moves; use weight 0 to fault it instead",
                        instance.name, reference.name
                    ),
                );
            }
            kept.push(reference);
        }
        instance.track_process = kept;
    }
}
