//! Gratuitous ARPs on the wire: a new master sends `garp_master_repeat`
//! rounds, and consecutive frames are at least `vrrp_garp_interval` apart.
//! Host `a` runs the agent as address owner; host `b` captures.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lab::{AgentNode, Lab};

const A_V4: &str = "192.0.2.1";
const B_V4: &str = "192.0.2.2";
/// 192.0.2.100, the VIP; as a 32-bit word for the pcap filter.
const VIP: &str = "192.0.2.100";
const VIP_WORD: &str = "0xc0000264";
const REPEAT: usize = 3;
const SPACING: Duration = Duration::from_millis(80);

#[test]
fn a_new_master_spaces_its_gratuitous_arps_by_vrrp_garp_interval() -> Result<()> {
    lab::require_lab_support()?;
    let lab = Lab::new("garp")?;
    let switch = lab.add_switch("sw")?;
    let a = lab.add_host("a")?;
    let b = lab.add_host("b")?;
    let a_if = lab.attach(&a, &switch)?;
    let b_if = lab.attach(&b, &switch)?;
    a.add_address(&a_if, &format!("{A_V4}/24"))?;
    b.add_address(&b_if, &format!("{B_V4}/24"))?;

    // ARP sender protocol address (offset 14 of the ARP header) is the VIP:
    // only the agent's announcements, not the kernel's own ARP traffic.
    let capture = b.capture(
        &b_if,
        &format!("arp and arp[14:4] = {VIP_WORD}"),
        REPEAT as u32,
    )?;
    let config = format!(
        "global_defs {{\n vrrp_garp_interval {}\n vrrp_garp_master_delay 0\n vrrp_garp_master_repeat {REPEAT}\n}}\n\
         vrrp_instance owner {{\n interface {a_if}\n state MASTER\n priority 255\n virtual_router_id 61\n advert_int 1\n virtual_ipaddress {{\n  {VIP}/24\n }}\n}}\n",
        SPACING.as_secs_f64()
    );
    let node = AgentNode::start(&a, &config)?;
    node.wait_for_state("owner", "MASTER", Duration::from_secs(10))?;
    capture
        .wait_for_packets(Duration::from_secs(10))
        .context("the new master did not send its gratuitous ARPs")?;
    let rows = capture.fields(&["frame.time_epoch", "arp.dst.proto_ipv4"], "")?;
    ensure!(
        rows.len() == REPEAT,
        "expected {REPEAT} frames, got {rows:?}"
    );
    let mut times = Vec::new();
    for row in &rows {
        ensure!(
            row.get(1).map(String::as_str) == Some(VIP),
            "not a gratuitous ARP for {VIP}: {row:?}"
        );
        let time: f64 = row[0]
            .parse()
            .with_context(|| format!("bad time in {row:?}"))?;
        times.push(time);
    }
    // The sender sleeps SPACING between frames, so a receive gap can only
    // be shorter by the difference in forwarding delay of two frames.
    let floor = SPACING.as_secs_f64() * 0.9;
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        ensure!(
            gap >= floor,
            "gratuitous ARPs {gap:.4} s apart; vrrp_garp_interval is {} s ({times:?})",
            SPACING.as_secs_f64()
        );
    }
    Ok(())
}
