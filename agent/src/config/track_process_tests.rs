//! `vrrp_track_process`, `track_process` in instances and sync groups, and
//! the process monitor's global_defs: every keyword, its defaults as
//! keepalived sets them, and located errors and warnings.

use std::time::Duration;

use super::Loaded;
use super::model::*;
use super::test_support::{self, warning_lines};

const FILE: &str = "k.conf";

fn ok(text: &str) -> Loaded {
    test_support::loads(text, FILE)
}

fn error_lines(text: &str) -> Vec<String> {
    test_support::refusal_lines(text, FILE)
}

/// One tracker whose block is `body` (line 2 is its first statement),
/// tracked by instance `a`.
fn with_process(body: &str) -> String {
    format!(
        "vrrp_track_process ng {{\n{body}\n}}\nvrrp_instance a {{\n interface eth0\n virtual_router_id 1\n priority 100\n track_process {{\n  ng\n }}\n virtual_ipaddress {{ 192.0.2.1 }}\n}}\n"
    )
}

fn process(text: &str) -> TrackProcess {
    ok(text).config.track_processes[0].clone()
}

#[test]
fn a_bare_process_has_keepalived_s_defaults() {
    let p = process(&with_process(" process nginx"));
    assert_eq!(p.name, "ng");
    assert_eq!(p.process, "nginx");
    assert!(p.params.is_empty());
    assert_eq!(p.param_match, ParamMatch::None);
    assert!(!p.full_command);
    assert_eq!((p.weight, p.weight_reverse), (0, false));
    assert_eq!((p.quorum, p.quorum_max), (1, u32::MAX));
    assert_eq!(
        (p.fork_delay, p.terminate_delay),
        (Duration::ZERO, Duration::ZERO)
    );
    let loaded = ok(&with_process(" process nginx"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let a = loaded.config.instance("a").expect("a");
    assert_eq!(a.track_process.len(), 1);
    assert_eq!(a.track_process[0].name, "ng");
}

#[test]
fn parameters_match_exactly_on_the_command_line_unless_param_match_says() {
    let p = process(&with_process(" process nginx -c \"/etc/my nginx.conf\""));
    assert_eq!(p.params, ["-c", "/etc/my nginx.conf"]);
    assert_eq!(p.param_match, ParamMatch::Exact);
    assert!(p.full_command);
    let p = process(&with_process(" param_match partial\n process nginx -c"));
    assert_eq!(p.param_match, ParamMatch::Partial);
    let p = process(&with_process(" process nginx -c\n param_match initial"));
    assert_eq!(p.param_match, ParamMatch::Initial);
    // param_match alone: exactly no parameters.
    let p = process(&with_process(" process nginx\n param_match"));
    assert_eq!((p.param_match, p.full_command), (ParamMatch::Exact, true));
    let p = process(&with_process(" process /usr/sbin/nginx\n full_command"));
    assert_eq!((p.param_match, p.full_command), (ParamMatch::None, true));
}

#[test]
fn weight_and_reverse() {
    let p = process(&with_process(" process nginx\n weight -20 reverse"));
    assert_eq!((p.weight, p.weight_reverse), (-20, true));
    let p = process(&with_process(" process nginx\n weight 254"));
    assert_eq!(p.weight, 254);
}

#[test]
fn quorum_and_quorum_max_follow_keepalived_s_order_rules() {
    let p = process(&with_process(" process w\n quorum 2\n quorum_max 4"));
    assert_eq!((p.quorum, p.quorum_max), (2, 4));
    // quorum_max 0: fail while any runs.
    let p = process(&with_process(" process w\n quorum_max 0"));
    assert_eq!((p.quorum, p.quorum_max), (0, 0));
    // A quorum above quorum_max, or quorum_max below quorum: ignored.
    let loaded = ok(&with_process(" process w\n quorum_max 2\n quorum 3"));
    assert_eq!(
        (
            loaded.config.track_processes[0].quorum,
            loaded.config.track_processes[0].quorum_max
        ),
        (1, 2)
    );
    assert_eq!(
        warning_lines(&loaded),
        [
            "k.conf:4:9: vrrp_track_process ng: quorum 3 is greater than quorum_max 2; ignored as keepalived does (write quorum before quorum_max)"
        ]
    );
    let loaded = ok(&with_process(" process w\n quorum 3\n quorum_max 2"));
    assert_eq!(loaded.config.track_processes[0].quorum_max, u32::MAX);
    assert_eq!(
        warning_lines(&loaded),
        [
            "k.conf:4:13: vrrp_track_process ng: quorum_max 2 is less than quorum 3; ignored as keepalived does"
        ]
    );
}

#[test]
fn delays_have_microsecond_resolution_and_delay_sets_both() {
    let p = process(&with_process(" process w\n delay 1.5"));
    assert_eq!(p.fork_delay, Duration::from_millis(1500));
    assert_eq!(p.terminate_delay, Duration::from_millis(1500));
    let p = process(&with_process(
        " process w\n fork_delay 0.000001\n terminate_delay 3600",
    ));
    assert_eq!(p.fork_delay, Duration::from_micros(1));
    assert_eq!(p.terminate_delay, Duration::from_secs(3600));
}

#[test]
fn bad_values_are_located_errors() {
    let cases = [
        (
            " process w\n weight 255",
            "k.conf:3:9: weight \"255\" is out of range",
        ),
        (
            " process w\n weight -5 sideways",
            "k.conf:3:12: \"sideways\" after weight is not known; expected `reverse`",
        ),
        (
            " process w\n quorum 0",
            "k.conf:3:9: quorum \"0\" is out of range",
        ),
        (
            " process w\n quorum_max 70000",
            "k.conf:3:13: quorum_max \"70000\" is out of range",
        ),
        (
            " process w\n delay 0",
            "k.conf:3:8: delay \"0\" is out of range",
        ),
        (
            " process w\n fork_delay 3600.5",
            "k.conf:3:13: fork_delay \"3600.5\" is out of range",
        ),
        (
            " process w\n terminate_delay 0.0000001",
            "k.conf:3:18: terminate_delay \"0.0000001\" is not a number",
        ),
        (
            " process w\n param_match fuzzy",
            "k.conf:3:14: vrrp_track_process ng: param_match \"fuzzy\" is not known",
        ),
        (
            " weight 2",
            "k.conf:1:1: vrrp_track_process ng has no process; expected `process NAME [PARAMETER ...]`",
        ),
        (" process", "k.conf:2:2: process needs a value"),
    ];
    for (body, expected) in cases {
        let lines = error_lines(&with_process(body));
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "{body:?}: no error starting {expected:?} in {lines:#?}"
        );
    }
}

#[test]
fn repeated_statements_are_ignored_with_a_warning_as_keepalived_does() {
    let loaded = ok(&with_process(
        " process a\n process b\n weight 5\n weight 7\n frob",
    ));
    let p = &loaded.config.track_processes[0];
    assert_eq!((p.process.as_str(), p.weight), ("a", 5));
    assert_eq!(
        warning_lines(&loaded),
        [
            "k.conf:3:10: vrrp_track_process ng: process is already set; ignoring \"b\" as keepalived does (one process per vrrp_track_process)",
            "k.conf:5:9: vrrp_track_process ng: weight is already set to 5; ignoring \"7\" as keepalived does",
            "k.conf:6:2: unknown or unsupported keyword \"frob\" in vrrp_track_process; ignored",
        ]
    );
}

#[test]
fn a_name_longer_than_the_kernel_keeps_warns_unless_full_command() {
    let loaded = ok(&with_process(" process a-very-long-daemon"));
    assert_eq!(
        warning_lines(&loaded),
        [
            "k.conf:2:10: vrrp_track_process ng: process \"a-very-long-daemon\" is longer than the 15 bytes the kernel keeps of a process name, so it never matches; add `full_command` to match the command line"
        ]
    );
    assert!(
        ok(&with_process(" process a-very-long-daemon\n full_command"))
            .warnings
            .is_empty()
    );
}

#[test]
fn instance_references_take_weight_reverse_and_name_what_exists() {
    let text = "vrrp_track_process ng {\n process nginx\n weight -10\n}\nvrrp_instance a {\n interface eth0\n virtual_router_id 1\n track_process {\n  ng weight 30 reverse\n  ng\n }\n virtual_ipaddress { 192.0.2.1 }\n}\n";
    let loaded = ok(text);
    let a = loaded.config.instance("a").expect("a");
    assert_eq!(a.track_process.len(), 1);
    assert_eq!(
        (a.track_process[0].weight, a.track_process[0].reverse),
        (Some(30), true)
    );
    assert_eq!(
        warning_lines(&loaded),
        [
            "k.conf:10:3: vrrp_instance a: track_process \"ng\" is listed twice (first at k.conf:9:3); ignored as keepalived does"
        ]
    );
    let missing = text.replace("  ng weight 30 reverse\n  ng\n", "  nope\n");
    assert_eq!(
        error_lines(&missing),
        [
            "k.conf:9:3: track_process \"nope\" in vrrp_instance a names no vrrp_track_process; expected the name of a vrrp_track_process (defined: ng)"
        ]
    );
    let bad = text.replace("ng weight 30 reverse", "ng weight 300");
    assert!(error_lines(&bad)[0].starts_with("k.conf:9:13: weight \"300\" is out of range"));
}

#[test]
fn a_weight_of_254_is_read_as_253_with_a_warning() {
    let loaded = ok(&with_process(" process nginx\n weight -254"));
    let a = loaded.config.instance("a").expect("a");
    assert_eq!(a.track_process[0].weight, Some(-253));
    assert_eq!(warning_lines(&loaded).len(), 1);
    assert!(warning_lines(&loaded)[0].starts_with(
        "k.conf:10:3: vrrp_instance a: track_process \"ng\" has weight -254, read as -253"
    ));
}

#[test]
fn duplicate_definitions_are_an_error() {
    let text = format!(
        "vrrp_track_process ng {{\n process x\n}}\n{}",
        with_process(" process nginx")
    );
    assert_eq!(
        error_lines(&text),
        [
            "k.conf:4:1: vrrp_track_process ng is defined twice (first at k.conf:1:1); expected unique names"
        ]
    );
}

const GROUP: &str = "\
vrrp_track_process ng {
 process nginx
 weight -30
}
vrrp_track_process w {
 process worker
}
vrrp_instance a {
 interface eth0
 virtual_router_id 1
 priority 150
 track_process {
  ng weight -5
  w
 }
 virtual_ipaddress { 192.0.2.1 }
}
vrrp_instance b {
 interface eth0
 virtual_router_id 2
 priority 100
 virtual_ipaddress { 192.0.2.2 }
}
";

fn tracked(loaded: &Loaded, name: &str) -> Vec<(String, Option<i32>, bool)> {
    loaded
        .config
        .instance(name)
        .expect("instance")
        .track_process
        .iter()
        .map(|r| (r.name.clone(), r.weight, r.reverse))
        .collect()
}

/// keepalived's vrrp_complete_instance leaves track_process alone: a group
/// member keeps its weighted processes even without
/// sync_group_tracking_weight, and every member gets the group's.
#[test]
fn a_sync_group_s_processes_merge_into_every_member() {
    let text = format!(
        "{GROUP}vrrp_sync_group G {{\n group {{\n  a\n  b\n }}\n track_process {{\n  ng weight -20 reverse\n }}\n}}\n"
    );
    let loaded = ok(&text);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // a's own entry takes the group's weight and keeps its direction.
    assert_eq!(
        tracked(&loaded, "a"),
        [("ng".into(), Some(-20), false), ("w".into(), None, false)]
    );
    assert_eq!(tracked(&loaded, "b"), [("ng".into(), Some(-20), true)]);
    assert_eq!(loaded.config.vrrp_sync_groups[0].track_process.len(), 1);
}

/// Unlike its weighted scripts and files, a member of a group without
/// sync_group_tracking_weight keeps its weighted processes, silently, as in
/// keepalived.
#[test]
fn a_group_member_keeps_its_own_weighted_processes() {
    let text = format!("{GROUP}vrrp_sync_group G {{\n group {{\n  a\n  b\n }}\n}}\n");
    let loaded = ok(&text);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        tracked(&loaded, "a"),
        [("ng".into(), Some(-5), false), ("w".into(), None, false)]
    );
}

/// An address owner keeps a weighted process too, but its priority never
/// moves: a warning says the weight does nothing.
#[test]
fn an_address_owner_s_weighted_process_warns_that_it_does_nothing() {
    let loaded = ok(&GROUP.replace(" priority 150\n", " priority 255\n"));
    assert_eq!(tracked(&loaded, "a").len(), 2);
    assert_eq!(
        warning_lines(&loaded),
        [
            "k.conf:13:3: vrrp_instance a: track_process \"ng\" has a weight, which does nothing: the address owner's (priority 255) priority never moves; use weight 0 to fault it instead"
        ]
    );
}

#[test]
fn a_sync_group_process_naming_nothing_is_a_located_error() {
    let text = format!(
        "{GROUP}vrrp_sync_group G {{\n group {{\n  a\n  b\n }}\n track_process {{\n  nope\n }}\n}}\n"
    );
    let lines = error_lines(&text);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "k.conf:30:3: track_process \"nope\" in vrrp_sync_group G names no vrrp_track_process; expected the name of a vrrp_track_process (defined: ng, w)"
        ),
        "{lines:?}"
    );
}

#[test]
fn an_address_owner_member_takes_the_group_s_process_unweighted() {
    let text = format!(
        "{}vrrp_sync_group G {{\n group {{\n  a\n  b\n }}\n track_process {{\n  ng\n }}\n}}\n",
        GROUP.replace(" priority 100\n", " priority 255\n")
    );
    let loaded = ok(&text);
    assert_eq!(tracked(&loaded, "b"), [("ng".into(), Some(0), false)]);
    let warnings = warning_lines(&loaded);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("member b has priority 255 (address owner)"));
}

#[test]
fn the_process_monitor_s_global_defs_are_read() {
    let text = format!(
        "global_defs {{\n process_monitor_rcv_bufs 500000\n process_monitor_rcv_bufs_force\n}}\n{}",
        with_process(" process nginx")
    );
    let global = ok(&text).config.global_defs;
    assert_eq!(global.process_monitor_rcv_bufs, Some(500_000));
    assert!(global.process_monitor_rcv_bufs_force);
    let off = text.replace("_force\n", "_force off\n");
    assert!(!ok(&off).config.global_defs.process_monitor_rcv_bufs_force);
    let bad = text.replace("500000", "lots");
    assert!(
        error_lines(&bad)[0]
            .starts_with("k.conf:2:27: process_monitor_rcv_bufs \"lots\" is not an integer")
    );
}

#[test]
fn the_dump_shows_the_effective_tracker() {
    let loaded = ok(&with_process(
        " process nginx -g\n param_match initial\n delay 0.25\n quorum_max 3",
    ));
    let json = serde_json::to_value(&loaded.config).expect("json");
    let p = &json["track_processes"][0];
    assert_eq!(p["process"], "nginx");
    assert_eq!(p["params"][0], "-g");
    assert_eq!(p["param_match"], "initial");
    assert_eq!(p["full_command"], true);
    assert_eq!(p["quorum"], 1);
    assert_eq!(p["quorum_max"], 3);
    assert_eq!(p["fork_delay"], 0.25);
    assert_eq!(json["vrrp_instances"][0]["track_process"][0]["name"], "ng");
}
