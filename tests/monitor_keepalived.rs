//! `vrrp-agent monitor` against the real thing: Debian's keepalived runs a
//! VRRPv3 and a VRRPv2 (PASS auth) instance on host a, and the monitor on
//! host b reports both virtual routers with keepalived's parameters.

use std::time::Duration;

use anyhow::{Result, ensure};
use lab::{Keepalived, Lab, Monitor, stats_router};
use serde_json::Value;

const A_V4: &str = "192.0.2.1";
const B_V4: &str = "192.0.2.2";
const V3_VRID: u8 = 61;
const V2_VRID: u8 = 62;
/// keepalived needs about a second to start and enter MASTER.
const WAIT: Duration = Duration::from_secs(10);

fn keepalived_config(iface: &str) -> String {
    format!(
        "global_defs {{
    router_id lab_a
}}
vrrp_instance V3 {{
    state MASTER
    interface {iface}
    version 3
    virtual_router_id {V3_VRID}
    priority 120
    advert_int 0.5
    virtual_ipaddress {{
        198.51.100.61/24
    }}
}}
vrrp_instance V2 {{
    state MASTER
    interface {iface}
    version 2
    virtual_router_id {V2_VRID}
    priority 110
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass secret
    }}
    virtual_ipaddress {{
        198.51.100.62/24
    }}
}}
"
    )
}

fn first_router_event(monitor: &Monitor, vrid: u8) -> Result<Value> {
    monitor.wait_for(0, WAIT, |line| {
        line["event"] == "router" && line["vrid"] == vrid
    })
}

#[test]
fn monitor_reports_keepalived_v3_and_v2_routers_and_filters_by_vrid() -> Result<()> {
    let lab = Lab::new("monka")?;
    let a = lab.add_host("a")?;
    let b = lab.add_host("b")?;
    let link = lab.connect(&a, &b)?;
    a.add_address(&link.a, &format!("{A_V4}/24"))?;
    b.add_address(&link.b, &format!("{B_V4}/24"))?;
    let monitor = Monitor::start(&b, &link.b, &["--refresh-ms", "200"])?;
    let keepalived = Keepalived::start(&a, &keepalived_config(&link.a))?;

    let v3 = first_router_event(&monitor, V3_VRID)?;
    ensure!(
        v3["family"] == "ipv4"
            && v3["version"] == 3
            && v3["master"] == A_V4
            && v3["priority"] == 120
            && v3["advert_interval_ms"] == 500
            && v3["checksum"] == "pseudo_header",
        "keepalived's VRRPv3 instance reported as {v3}\nkeepalived log:\n{}",
        keepalived.log_text()
    );
    let v2 = first_router_event(&monitor, V2_VRID)?;
    ensure!(
        v2["family"] == "ipv4"
            && v2["version"] == 2
            && v2["master"] == A_V4
            && v2["priority"] == 110
            && v2["advert_interval_ms"] == 1000,
        "keepalived's VRRPv2 instance reported as {v2}\nkeepalived log:\n{}",
        keepalived.log_text()
    );
    // Steady adverts from both, with no further change events.
    let (_, stats) = monitor.wait_for_router_stats(0, WAIT, V2_VRID, "ipv4", |router| {
        router["adverts"].as_u64().is_some_and(|n| n >= 2)
    })?;
    let v3_row = stats_router(&stats, V3_VRID, "ipv4");
    ensure!(
        v3_row.is_some_and(
            |row| row["adverts"].as_u64().is_some_and(|n| n >= 3) && row["status"] == "alive"
        ),
        "VRRPv3 router missing or quiet in {stats}"
    );
    for vrid in [V3_VRID, V2_VRID] {
        let events = monitor.router_events(vrid);
        ensure!(
            events.len() == 1,
            "steady keepalived adverts should raise one router event for vrid {vrid}: {events:#?}"
        );
    }
    monitor.process().sigterm()?;
    let status = monitor.process().wait(Duration::from_secs(5))?;
    ensure!(status.success(), "monitor exit: {status}");

    // Only one XDP program fits on the interface, so the filtered run comes second.
    let filtered = Monitor::start(
        &b,
        &link.b,
        &["--refresh-ms", "200", "--vrid", &V3_VRID.to_string()],
    )?;
    let (v3_stats, stats) = filtered.wait_for_router_stats(0, WAIT, V3_VRID, "ipv4", |router| {
        router["adverts"].as_u64().is_some_and(|n| n >= 5)
    })?;
    let v3_adverts = v3_stats["adverts"].as_u64().unwrap_or_default();
    let accepted = stats["counters"]["accepted"].as_u64().unwrap_or_default();
    // ~2.5 s of v3 adverts at 0.5 s means at least two v2 adverts arrived too.
    ensure!(
        accepted > v3_adverts,
        "the datapath saw no VRRPv2 adverts, so the filter was not exercised: {stats}"
    );
    let lines = filtered.lines();
    ensure!(
        lines
            .iter()
            .filter(|line| line["event"] == "router")
            .all(|line| line["vrid"] == V3_VRID),
        "--vrid {V3_VRID} let other routers' events through: {lines:#?}"
    );
    ensure!(
        lines
            .iter()
            .filter(|line| line["event"] == "stats")
            .all(|line| stats_router(line, V2_VRID, "ipv4").is_none()),
        "--vrid {V3_VRID} listed vrid {V2_VRID} in stats"
    );
    ensure!(
        filtered.router_events(V3_VRID).len() == 1,
        "expected one router event for vrid {V3_VRID}"
    );
    drop(keepalived);
    Ok(())
}
