//! keepalived's configuration language where it decides what a node runs:
//! one file shared by both nodes of a pair, told apart by the config id
//! (`vrrp-agent -i ID`, keepalived's `-i`): `@ID` / `@^ID` lines,
//! `$NAME=value` definitions chosen by condition, and `~SEQ` lines.
//!
//! Lab: two agent hosts on one switch, 192.0.2.0/24 (node1 .21, node2 .22),
//! VIPs from 203.0.113.0/24.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lab::{AgentNode, Lab};

/// Both nodes start BACKUP and wait Master_Down_Interval (≈3.6 s at
/// advert_int 1); the rest is slack for a loaded machine.
const CONVERGE: Duration = Duration::from_secs(15);

/// The pair's one file. Each node's interface name comes from a conditional
/// definition (the lab names them differently); node1 owns VI_A, node2
/// VI_B, by priorities that depend on the config id.
fn shared_config(if1: &str, if2: &str) -> String {
    format!(
        "\
global_defs {{
 @node1 router_id lab-node1
 @node2 router_id lab-node2
}}
@node1 $IF={if1}
@node2 $IF={if2}
$INSTANCE=\\
vrrp_instance VI_${{NAME}} {{ \\
 state BACKUP \\
 interface $IF \\
 virtual_router_id ${{VRID}} \\
 priority $PRIO \\
 advert_int 1 \\
 virtual_ipaddress {{ \\
  ~SEQ(HOST, ${{FIRST}}, ${{LAST}}) 203.0.113.${{HOST}}/24 \\
 }} \\
}}

$NAME=A
@node1 $PRIO=150
@^node1 $PRIO=100
$VRID=61
$FIRST=10
$LAST=11
$INSTANCE
$NAME=B
@node2 $PRIO=150
@^node2 $PRIO=100
$VRID=62
$FIRST=20
$LAST=21
$INSTANCE
"
    )
}

#[test]
fn one_shared_file_runs_each_node_by_its_config_id() -> Result<()> {
    let lab = Lab::new("cfgid")?;
    let switch = lab.add_switch("sw")?;
    let host1 = lab.add_host("node1")?;
    let host2 = lab.add_host("node2")?;
    let if1 = lab.attach(&host1, &switch)?;
    let if2 = lab.attach(&host2, &switch)?;
    host1.add_address(&if1, "192.0.2.21/24")?;
    host2.add_address(&if2, "192.0.2.22/24")?;
    let config = shared_config(&if1, &if2);
    let node1 = AgentNode::start_with_args(&host1, &config, &["-i", "node1"])?;
    let node2 = AgentNode::start_with_args(&host2, &config, &["--config-id", "node2"])?;

    let started = Instant::now();
    let left = || CONVERGE.saturating_sub(started.elapsed());
    for (node, instance, state) in [
        (&node1, "VI_A", "MASTER"),
        (&node2, "VI_B", "MASTER"),
        (&node1, "VI_B", "BACKUP"),
        (&node2, "VI_A", "BACKUP"),
    ] {
        node.wait_for_state(instance, state, left())?;
    }
    println!(
        "shared file: pair converged {} ms after start",
        started.elapsed().as_millis()
    );
    // Each node's priorities came from its own conditional definitions.
    for (node, instance, priority) in [
        (&node1, "VI_A", 150),
        (&node1, "VI_B", 100),
        (&node2, "VI_A", 100),
        (&node2, "VI_B", 150),
    ] {
        let seen = node.instance(instance)?;
        ensure!(
            seen["base_priority"] == priority,
            "{instance} on {} should have priority {priority}: {seen}",
            node.host().name()
        );
    }
    // The ~SEQ line gave each instance both of its addresses, and the
    // master holds them.
    for (node, instance) in [(&node1, "VI_A"), (&node2, "VI_B")] {
        let seen = node.instance(instance)?;
        let count = seen["virtual_addresses"].as_array().map_or(0, Vec::len);
        ensure!(count == 2, "{instance} should have two VIPs: {seen}");
    }
    for (node, iface, vips) in [
        (&node1, &if1, ["203.0.113.10", "203.0.113.11"]),
        (&node2, &if2, ["203.0.113.20", "203.0.113.21"]),
    ] {
        for vip in vips {
            let ip = vip.parse().context("VIP literal")?;
            ensure!(
                node.host().has_address(iface, ip)?,
                "{} should hold {vip} as master",
                node.host().name()
            );
        }
    }
    Ok(())
}

/// A pair sharing one file whose `vrrp_sync_group` tracks a script (every
/// 0.5 s: keepalived's decimal interval) for both members: removing node1's
/// flag file faults both of node1's members and node2 takes both over;
/// restoring it gives both back to node1 (higher priority, preempting).
fn sync_group_config(if1: &str, if2: &str, flag1: &str, flag2: &str) -> String {
    format!(
        "\
@node1 $IF={if1}
@node2 $IF={if2}
@node1 $FLAG={flag1}
@node2 $FLAG={flag2}
@node1 $PRIO=150
@node2 $PRIO=100
vrrp_script chk {{
 script \"/usr/bin/test -e ${{FLAG}}\"
 interval 0.5
}}
vrrp_sync_group G {{
 group {{
  SG_A
  SG_B
 }}
 track_script {{
  chk
 }}
}}
"
    ) + "\
$MEMBER=\\
vrrp_instance ${NAME} { \\
 state BACKUP \\
 interface $IF \\
 virtual_router_id ${VRID} \\
 priority $PRIO \\
 advert_int 1 \\
 virtual_ipaddress { \\
  203.0.113.${VIP}/24 \\
 } \\
}

~LST({NAME, VRID, VIP}, {SG_A, 71, 31}, {SG_B, 72, 32}) $MEMBER
"
}

#[test]
fn a_sync_group_s_tracked_script_moves_every_member() -> Result<()> {
    let lab = Lab::new("cfgsync")?;
    let switch = lab.add_switch("sw")?;
    let host1 = lab.add_host("node1")?;
    let host2 = lab.add_host("node2")?;
    let if1 = lab.attach(&host1, &switch)?;
    let if2 = lab.attach(&host2, &switch)?;
    host1.add_address(&if1, "192.0.2.31/24")?;
    host2.add_address(&if2, "192.0.2.32/24")?;
    let flag1 = lab.temp_dir().join("node1.flag");
    let flag2 = lab.temp_dir().join("node2.flag");
    for flag in [&flag1, &flag2] {
        std::fs::write(flag, "up\n").with_context(|| format!("writing {}", flag.display()))?;
    }
    let text = |p: &std::path::Path| p.to_str().map(str::to_owned).context("temp path not UTF-8");
    let config = sync_group_config(&if1, &if2, &text(&flag1)?, &text(&flag2)?);
    let node1 = AgentNode::start_with_args(&host1, &config, &["-i", "node1"])?;
    let node2 = AgentNode::start_with_args(&host2, &config, &["-i", "node2"])?;

    let wait_all = |expected: &[(&AgentNode, &str, &str)]| -> Result<Duration> {
        let started = Instant::now();
        for (node, instance, state) in expected {
            node.wait_for_state(instance, state, CONVERGE.saturating_sub(started.elapsed()))?;
        }
        Ok(started.elapsed())
    };
    wait_all(&[
        (&node1, "SG_A", "MASTER"),
        (&node1, "SG_B", "MASTER"),
        (&node2, "SG_A", "BACKUP"),
        (&node2, "SG_B", "BACKUP"),
    ])?;

    // Both members track the group's script, each listing it.
    for instance in ["SG_A", "SG_B"] {
        let seen = node1.instance(instance)?;
        ensure!(
            seen["tracked"].to_string().contains("chk"),
            "{instance} on node1 should track chk from its sync group: {seen}"
        );
    }

    std::fs::remove_file(&flag1).context("removing node1's flag")?;
    let took = wait_all(&[
        (&node1, "SG_A", "FAULT"),
        (&node1, "SG_B", "FAULT"),
        (&node2, "SG_A", "MASTER"),
        (&node2, "SG_B", "MASTER"),
    ])?;
    println!(
        "flag removed: node2 master of both members after {} ms",
        took.as_millis()
    );

    std::fs::write(&flag1, "up\n").context("restoring node1's flag")?;
    let took = wait_all(&[
        (&node1, "SG_A", "MASTER"),
        (&node1, "SG_B", "MASTER"),
        (&node2, "SG_A", "BACKUP"),
        (&node2, "SG_B", "BACKUP"),
    ])?;
    println!(
        "flag restored: node1 master of both again after {} ms",
        took.as_millis()
    );
    Ok(())
}

/// Instances of a sync group, without `sync_group_tracking_weight`, as
/// keepalived reads them: node1's SG_A tracks an interface with weight -10,
/// which would only lower it to 140 (still above node2's 100). keepalived
/// ignores a member's weights, so the interface going down faults SG_A, and
/// through the group SG_B, and node2 takes both.
fn member_weight_config(iface: &str, tracked: Option<&str>, priority: u8) -> String {
    let track = tracked.map_or(String::new(), |t| {
        format!(" track_interface {{\n  {t} weight -10\n }}\n")
    });
    format!(
        "\
vrrp_sync_group G {{
 group {{
  SG_A
  SG_B
 }}
}}
vrrp_instance SG_A {{
 state BACKUP
 interface {iface}
 virtual_router_id 73
 priority {priority}
 advert_int 1
{track} virtual_ipaddress {{
  203.0.113.33/24
 }}
}}
vrrp_instance SG_B {{
 state BACKUP
 interface {iface}
 virtual_router_id 74
 priority {priority}
 advert_int 1
 virtual_ipaddress {{
  203.0.113.34/24
 }}
}}
"
    )
}

#[test]
fn a_sync_group_member_s_own_weighted_interface_faults_the_group() -> Result<()> {
    let lab = Lab::new("cfgsgw")?;
    let switch = lab.add_switch("sw")?;
    let uplinks = lab.add_switch("up")?;
    let host1 = lab.add_host("node1")?;
    let host2 = lab.add_host("node2")?;
    let if1 = lab.attach(&host1, &switch)?;
    let if2 = lab.attach(&host2, &switch)?;
    let uplink1 = lab.attach(&host1, &uplinks)?;
    host1.add_address(&if1, "192.0.2.33/24")?;
    host2.add_address(&if2, "192.0.2.34/24")?;
    let node1 = AgentNode::start(&host1, &member_weight_config(&if1, Some(&uplink1), 150))?;
    let node2 = AgentNode::start(&host2, &member_weight_config(&if2, None, 100))?;
    let wait_all = |expected: &[(&AgentNode, &str, &str)]| -> Result<()> {
        let started = Instant::now();
        for (node, instance, state) in expected {
            node.wait_for_state(instance, state, CONVERGE.saturating_sub(started.elapsed()))?;
        }
        Ok(())
    };
    wait_all(&[
        (&node1, "SG_A", "MASTER"),
        (&node1, "SG_B", "MASTER"),
        (&node2, "SG_A", "BACKUP"),
        (&node2, "SG_B", "BACKUP"),
    ])?;

    host1.link_down(&uplink1)?;
    wait_all(&[
        (&node1, "SG_A", "FAULT"),
        (&node1, "SG_B", "FAULT"),
        (&node2, "SG_A", "MASTER"),
        (&node2, "SG_B", "MASTER"),
    ])?;

    host1.link_up(&uplink1)?;
    wait_all(&[
        (&node1, "SG_A", "MASTER"),
        (&node1, "SG_B", "MASTER"),
        (&node2, "SG_A", "BACKUP"),
        (&node2, "SG_B", "BACKUP"),
    ])?;
    let logs = format!(
        "{}{}",
        node1.process().stderr().text(),
        node1.process().stdout().text()
    );
    ensure!(
        logs.contains("which keepalived ignores because it is a member of vrrp_sync_group G"),
        "node1 should warn that SG_A's own weight is ignored: {logs}"
    );
    Ok(())
}
