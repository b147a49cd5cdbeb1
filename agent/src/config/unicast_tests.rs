//! keepalived's unicast keywords: `unicast_ttl`, `check_unicast_src`,
//! `vrrp_check_unicast_src`, per-peer `min_ttl` / `max_ttl`,
//! `unicast_fault_no_peer`, and instances without `interface`, from the
//! file to the plan the daemon runs.

use std::net::{IpAddr, Ipv4Addr};

use agent_common::{INSTANCE_CHECK_UNICAST_SOURCE, INSTANCE_UNICAST};

use super::test_support::{self, warning_lines as warnings};
use super::{Loaded, unicast::resolve_interfaces};
use crate::{
    daemon::plan::{self, InstancePlan, NO_UNICAST_PEER, TrackedSource, test_eth1 as eth1},
    datapath::UnicastPeerFilter,
};

const FILE: &str = "k.conf";

fn ok(text: &str) -> Loaded {
    test_support::loads(text, FILE)
}

fn errors(text: &str) -> Vec<String> {
    test_support::refusal_lines(text, FILE)
}

fn planned(loaded: &Loaded) -> InstancePlan {
    plan::plan(&loaded.config, &eth1, "h")
        .expect("plan")
        .instances()
        .next()
        .expect("one instance")
        .clone()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn instance(global: &str, body: &str) -> String {
    format!(
        "global_defs {{\n{global}\n}}\nvrrp_instance a {{\n interface eth1\n virtual_router_id 5\n{body}\n virtual_ipaddress {{ 203.0.113.1 }}\n}}\n"
    )
}

#[test]
fn multicast_instances_keep_the_ttl_check_and_check_no_sources() {
    let loaded = ok(&instance("", ""));
    let plan = planned(&loaded);
    assert_eq!(plan.filter.flags, 0);
    assert!(plan.unicast_sources.is_empty());
    assert_eq!(plan.unicast_ttl, None);
}

#[test]
fn unicast_instances_skip_the_ttl_check_and_check_no_source_by_default() {
    let loaded = ok(&instance(
        "",
        " unicast_src_ip 192.0.2.10\n unicast_peer {\n  198.51.100.20\n }",
    ));
    assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
    let plan = planned(&loaded);
    assert_eq!(plan.filter.flags, INSTANCE_UNICAST);
    assert!(plan.unicast_sources.is_empty());
    assert_eq!(plan.destinations, vec![v4(198, 51, 100, 20)]);
}

#[test]
fn check_unicast_src_gives_the_kernel_every_peer_with_the_full_ttl_range() {
    let loaded = ok(&instance(
        "",
        " check_unicast_src\n unicast_peer {\n  198.51.100.20\n  198.51.100.21\n }",
    ));
    let plan = planned(&loaded);
    assert_eq!(
        plan.filter.flags,
        INSTANCE_UNICAST | INSTANCE_CHECK_UNICAST_SOURCE
    );
    assert_eq!(
        plan.unicast_sources,
        vec![
            UnicastPeerFilter {
                address: v4(198, 51, 100, 20),
                min_ttl: 0,
                max_ttl: 255,
            },
            UnicastPeerFilter {
                address: v4(198, 51, 100, 21),
                min_ttl: 0,
                max_ttl: 255,
            },
        ]
    );
}

#[test]
fn the_global_vrrp_check_unicast_src_checks_every_unicast_instance() {
    let loaded = ok(&instance(
        " vrrp_check_unicast_src",
        " unicast_peer {\n  198.51.100.20\n }",
    ));
    assert!(loaded.config.global_defs.vrrp_check_unicast_src);
    let plan = planned(&loaded);
    assert_eq!(
        plan.filter.flags,
        INSTANCE_UNICAST | INSTANCE_CHECK_UNICAST_SOURCE
    );
    assert_eq!(plan.unicast_sources.len(), 1);
    // A multicast instance has nothing to check.
    let multicast = ok(&instance(" vrrp_check_unicast_src", ""));
    assert_eq!(planned(&multicast).filter.flags, 0);
}

/// keepalived turns the source check on for an instance as soon as one of
/// its peers has a TTL range.
#[test]
fn a_peer_ttl_range_checks_sources_and_keeps_the_range() {
    let loaded = ok(&instance(
        "",
        " unicast_peer {\n  198.51.100.20 min_ttl 250\n  198.51.100.21 max_ttl 64\n  198.51.100.22\n }",
    ));
    assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
    let plan = planned(&loaded);
    assert_eq!(
        plan.filter.flags,
        INSTANCE_UNICAST | INSTANCE_CHECK_UNICAST_SOURCE
    );
    let ranges: Vec<(IpAddr, u8, u8)> = plan
        .unicast_sources
        .iter()
        .map(|peer| (peer.address, peer.min_ttl, peer.max_ttl))
        .collect();
    assert_eq!(
        ranges,
        vec![
            (v4(198, 51, 100, 20), 250, 255),
            (v4(198, 51, 100, 21), 0, 64),
            (v4(198, 51, 100, 22), 0, 255),
        ]
    );
}

#[test]
fn an_empty_ttl_range_warns_where_the_peer_is_written() {
    let loaded = ok(&instance(
        "",
        " unicast_peer {\n  198.51.100.20 min_ttl 200 max_ttl 100\n }",
    ));
    let warnings = warnings(&loaded);
    assert!(
        warnings
            .iter()
            .any(|w| w
                .starts_with("k.conf:8:3: unicast peer 198.51.100.20: min_ttl 200 > max_ttl 100")),
        "{warnings:#?}"
    );
}

#[test]
fn unicast_ttl_sets_the_hop_limit_of_unicast_adverts() {
    let loaded = ok(&instance(
        "",
        " unicast_ttl 64\n unicast_peer {\n  198.51.100.20\n }",
    ));
    assert_eq!(loaded.config.vrrp_instances[0].unicast_ttl, Some(64));
    assert_eq!(planned(&loaded).unicast_ttl, Some(64));
    let default = ok(&instance("", " unicast_peer {\n  198.51.100.20\n }"));
    assert_eq!(planned(&default).unicast_ttl, None);
}

#[test]
fn unicast_ttl_without_peers_is_ignored_with_a_warning() {
    let loaded = ok(&instance("", " unicast_ttl 64"));
    let warnings = warnings(&loaded);
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "k.conf:7:2: vrrp_instance a: unicast_ttl without unicast peers is ignored"
        )),
        "{warnings:#?}"
    );
    assert_eq!(loaded.config.vrrp_instances[0].unicast_ttl, None);
}

#[test]
fn unicast_ttl_out_of_range_is_an_error() {
    let errors = errors(&instance(
        "",
        " unicast_ttl 0\n unicast_peer {\n  198.51.100.20\n }",
    ));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("k.conf:7:14: unicast_ttl \"0\" is out of range")),
        "{errors:#?}"
    );
}

#[test]
fn unicast_fault_no_peer_without_peers_keeps_the_instance_in_fault() {
    let loaded = ok(&instance(
        "",
        " unicast_src_ip 192.0.2.10\n unicast_fault_no_peer",
    ));
    let warnings = warnings(&loaded);
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "k.conf:7:2: vrrp_instance a asks for unicast but has no unicast peers; it stays in FAULT"
        )),
        "{warnings:#?}"
    );
    let plan = planned(&loaded);
    assert_eq!(
        plan.tracked.last(),
        Some(&TrackedSource::Config(NO_UNICAST_PEER.to_owned()))
    );
    let item = plan.election.tracked.last().expect("a fault item");
    assert_eq!((item.weight, item.initially_up), (0, false));
    let mut election = crate::vrrp::election::Instance::new(&plan.election).expect("valid");
    let actions = election
        .handle(
            crate::vrrp::election::Input::Start,
            crate::vrrp::election::Timestamp::ZERO,
        )
        .expect("starts");
    assert_eq!(
        election.state(),
        crate::vrrp::election::State::Fault,
        "{actions:?}"
    );
}

#[test]
fn unicast_fault_no_peer_with_peers_runs_unicast() {
    let loaded = ok(&instance(
        "",
        " unicast_fault_no_peer\n unicast_peer {\n  198.51.100.20\n }",
    ));
    assert!(warnings(&loaded).is_empty(), "{:?}", warnings(&loaded));
    let plan = planned(&loaded);
    assert!(plan.tracked.is_empty());
    assert_eq!(plan.filter.flags, INSTANCE_UNICAST);
}

#[test]
fn a_unicast_keyword_without_peers_runs_multicast_with_a_warning() {
    let loaded = ok(&instance("", " check_unicast_src"));
    let warnings = warnings(&loaded);
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "k.conf:7:2: vrrp_instance a: a unicast keyword without any unicast_peer runs the instance over multicast"
        )),
        "{warnings:#?}"
    );
    let plan = planned(&loaded);
    assert_eq!(plan.filter.flags, 0);
    assert!(plan.tracked.is_empty());
}

const NO_INTERFACE: &str = "vrrp_instance a {\n virtual_router_id 5\n unicast_src_ip 192.0.2.10\n unicast_peer {\n  198.51.100.20\n }\n virtual_ipaddress { 203.0.113.1 }\n}\n";

#[test]
fn a_unicast_instance_without_interface_runs_where_its_source_is() {
    let mut loaded = ok(NO_INTERFACE);
    assert_eq!(loaded.config.vrrp_instances[0].interface, "");
    resolve_interfaces(&mut loaded.config, &|address| {
        (address == v4(192, 0, 2, 10)).then(|| "eth1".to_owned())
    })
    .expect("resolved");
    let plan = planned(&loaded);
    assert_eq!((plan.interface.as_str(), plan.ifindex), ("eth1", 7));
    assert_eq!(plan.source, v4(192, 0, 2, 10));
}

#[test]
fn a_source_no_interface_holds_is_a_located_error() {
    let mut loaded = ok(NO_INTERFACE);
    let errors = resolve_interfaces(&mut loaded.config, &|_| None).expect_err("unresolved");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "k.conf:3:17: vrrp_instance a has no interface and no interface of this host holds its unicast_src_ip 192.0.2.10; add the address to the interface the peers are reached through, or set `interface NAME`"
        ]
    );
}

#[test]
fn only_unicast_instances_with_a_source_may_omit_the_interface() {
    let multicast =
        errors("vrrp_instance a {\n virtual_router_id 5\n virtual_ipaddress { 203.0.113.1 }\n}\n");
    assert!(
        multicast.iter().any(|e| e.starts_with(
            "k.conf:1:15: vrrp_instance a has no interface; expected `interface NAME`"
        )),
        "{multicast:#?}"
    );
    let no_source = errors(
        "vrrp_instance a {\n virtual_router_id 5\n unicast_peer {\n  198.51.100.20\n }\n virtual_ipaddress { 203.0.113.1 }\n}\n",
    );
    assert!(
        no_source.iter().any(|e| e.starts_with(
            "k.conf:1:15: vrrp_instance a: unicast instances must have unicast_src_ip or interface"
        )),
        "{no_source:#?}"
    );
    let link_local = errors(
        "vrrp_instance a {\n virtual_router_id 5\n unicast_src_ip fe80::1\n unicast_peer {\n  fe80::2\n }\n virtual_ipaddress { 2001:db8::1 }\n}\n",
    );
    assert!(
        link_local
            .iter()
            .any(|e| e.contains("unicast_src_ip fe80::1 is link-local")),
        "{link_local:#?}"
    );
}

/// Two instances on one interface, VRID and family would share one kernel
/// filter: also refused when the interface comes from `unicast_src_ip`.
#[test]
fn a_resolved_interface_may_not_clash_with_another_instance() {
    let text = format!(
        "{NO_INTERFACE}vrrp_instance b {{\n interface eth1\n virtual_router_id 5\n virtual_ipaddress {{ 203.0.113.2 }}\n}}\n"
    );
    let mut loaded = ok(&text);
    let errors =
        resolve_interfaces(&mut loaded.config, &|_| Some("eth1".to_owned())).expect_err("a clash");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "k.conf:3:17: vrrp_instance a runs on eth1 (it holds unicast_src_ip 192.0.2.10) with virtual_router_id 5, as vrrp_instance b does; expected a VRID unique per interface and family"
        ]
    );
}
