//! Unicast VRRP across a router, as keepalived runs it: node a and node b
//! sit on two different links of a router namespace that forwards between
//! them (TTL / hop limit decremented), each with a default route via the
//! router. RFC 5798's TTL 255 check holds for multicast only; keepalived
//! checks unicast adverts against nothing unless asked
//! (`check_unicast_src`, `min_ttl` / `max_ttl`).
//!
//! - an agent pair elects one master and fails over when it is killed;
//!   the agents are written without `interface` (resolved from
//!   `unicast_src_ip`);
//! - `check_unicast_src` drops an advert from a non-peer source (the
//!   `unicast_source` counter moves, the state does not);
//! - `unicast_ttl` and a peer's `min_ttl` / `max_ttl`: out of range the
//!   advert is dropped (`ttl`), in range (after a reload) it counts;
//! - interop with keepalived across the router, both role assignments;
//!
//! each for IPv4 and IPv6.

use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use lab::{Advert, AdvertBurst, AgentNode, Host, Keepalived, Lab};

const INSTANCE: &str = "VI_1";
const VRID: u8 = 51;
const HIGH: u8 = 200;
const LOW: u8 = 100;
/// Master_Down_Interval at priority 100 and advert_int 1 s is 3.6 s; the
/// rest is process start-up on a loaded machine.
const SETTLE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// (router side, node side) of node a's link, and of node b's.
    fn links(self) -> [(&'static str, &'static str); 2] {
        match self {
            Family::V4 => [
                ("192.0.2.1/24", "192.0.2.10/24"),
                ("198.51.100.1/24", "198.51.100.10/24"),
            ],
            Family::V6 => [
                ("2001:db8:1::1/64", "2001:db8:1::10/64"),
                ("2001:db8:2::1/64", "2001:db8:2::10/64"),
            ],
        }
    }

    fn gateway(self, side: usize) -> &'static str {
        host_part(self.links()[side].0)
    }

    fn node(self, side: usize) -> &'static str {
        host_part(self.links()[side].1)
    }

    fn vip(self) -> &'static str {
        match self {
            Family::V4 => "203.0.113.10/32",
            Family::V6 => "2001:db8:3::10/128",
        }
    }

    fn vip_address(self) -> IpAddr {
        host_part(self.vip()).parse().expect("literal")
    }
}

fn host_part(cidr: &str) -> &str {
    cidr.split('/').next().expect("a CIDR")
}

/// The router and the two nodes, with each node's interface.
struct Routed {
    _lab: Lab,
    family: Family,
    router: Host,
    /// The router's interface towards node b.
    router_b: String,
    a: Host,
    a_if: String,
    b: Host,
    b_if: String,
}

impl Routed {
    fn new(prefix: &str, family: Family) -> Result<Self> {
        lab::require_lab_support()?;
        let lab = Lab::new(prefix)?;
        let router = lab.add_host("r")?;
        let a = lab.add_host("a")?;
        let b = lab.add_host("b")?;
        let to_a = lab.connect(&router, &a)?;
        let to_b = lab.connect(&router, &b)?;
        router.set_sysctl("net/ipv4/ip_forward", "1")?;
        router.set_sysctl("net/ipv6/conf/all/forwarding", "1")?;
        for (side, (host, iface, router_if)) in [(&a, &to_a.b, &to_a.a), (&b, &to_b.b, &to_b.a)]
            .into_iter()
            .enumerate()
        {
            let (router_cidr, node_cidr) = family.links()[side];
            router.add_address(router_if, router_cidr)?;
            host.add_address(iface, node_cidr)?;
            let family_flag = if family == Family::V4 { "-4" } else { "-6" };
            host.ip(&[
                family_flag,
                "route",
                "add",
                "default",
                "via",
                family.gateway(side),
                "dev",
                iface,
            ])?;
        }
        Ok(Self {
            family,
            router_b: to_b.a.clone(),
            a_if: to_a.b,
            b_if: to_b.b,
            router,
            a,
            b,
            _lab: lab,
        })
    }

    /// Proves the router forwards between the nodes, and with that, that
    /// an advert between them arrives one hop down.
    fn check_forwarding(&self) -> Result<()> {
        let version = if self.family == Family::V4 {
            "-4"
        } else {
            "-6"
        };
        let out = self.a.exec_unchecked(
            &["ping", version, "-c", "1", "-W", "2", self.family.node(1)],
            Duration::from_secs(5),
        )?;
        ensure!(
            out.success(),
            "node a cannot reach node b through the router: {}{}",
            out.stdout,
            out.stderr
        );
        Ok(())
    }
}

/// keepalived.conf for one node: unicast to the other node across the
/// router. `interface` is left out when `None`, as keepalived allows for
/// unicast instances.
fn config(
    family: Family,
    side: usize,
    iface: Option<&str>,
    priority: u8,
    extra: &str,
    peer_options: &str,
) -> String {
    let interface = iface.map_or(String::new(), |name| format!("    interface {name}\n"));
    format!(
        "global_defs {{
    router_id node{side}
}}
vrrp_instance {INSTANCE} {{
    state BACKUP
{interface}    version 3
    virtual_router_id {VRID}
    priority {priority}
    advert_int 1
    unicast_src_ip {own}
{extra}    unicast_peer {{
        {peer}{peer_options}
    }}
    virtual_ipaddress {{
        {vip}
    }}
}}
",
        own = family.node(side),
        peer = family.node(1 - side),
        vip = family.vip(),
    )
}

fn counter(node: &AgentNode, name: &str) -> Result<u64> {
    let status = node.status()?;
    status["counters"][name]
        .as_u64()
        .with_context(|| format!("status has no counter {name}: {status}"))
}

/// `node` stays in `state` for `period` (checked every 100 ms).
fn holds(node: &AgentNode, state: &str, period: Duration) -> Result<()> {
    let end = std::time::Instant::now() + period;
    while std::time::Instant::now() < end {
        let now = node.state(INSTANCE)?;
        ensure!(
            now == state,
            "instance {INSTANCE} in host {} left {state} for {now}",
            node.host().name()
        );
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn pair_elects_one_master_and_fails_over(family: Family, prefix: &str) -> Result<()> {
    let routed = Routed::new(prefix, family)?;
    routed.check_forwarding()?;
    let a = AgentNode::start(&routed.a, &config(family, 0, None, HIGH, "", ""))?;
    let b = AgentNode::start(&routed.b, &config(family, 1, None, LOW, "", ""))?;
    a.wait_for_state(INSTANCE, "MASTER", SETTLE)?;
    b.wait_for_state(INSTANCE, "BACKUP", SETTLE)?;
    // One master, and it stays that way: b hears a's forwarded adverts.
    holds(&b, "BACKUP", Duration::from_secs(5))?;
    ensure!(a.state(INSTANCE)? == "MASTER", "a lost MASTER");
    ensure!(
        routed.a.has_address(&routed.a_if, family.vip_address())?,
        "a holds no VIP as master"
    );
    ensure!(
        counter(&b, "accepted")? > 0 && counter(&b, "ttl")? == 0,
        "b's counters: {}",
        b.status()?["counters"]
    );
    a.process().kill9()?;
    b.wait_for_state(INSTANCE, "MASTER", SETTLE)?;
    ensure!(
        routed.b.has_address(&routed.b_if, family.vip_address())?,
        "b holds no VIP as master"
    );
    Ok(())
}

#[test]
fn agent_pair_across_a_router_fails_over_ipv4() -> Result<()> {
    pair_elects_one_master_and_fails_over(Family::V4, "ucrpair4")
}

#[test]
fn agent_pair_across_a_router_fails_over_ipv6() -> Result<()> {
    pair_elects_one_master_and_fails_over(Family::V6, "ucrpair6")
}

/// b alone, as master; the router (no peer of b) claims the virtual router
/// with a higher priority. Dropped and counted, b stays master.
fn non_peer_source_is_dropped(family: Family, prefix: &str) -> Result<()> {
    let routed = Routed::new(prefix, family)?;
    let b = AgentNode::start(
        &routed.b,
        &config(
            family,
            1,
            Some(&routed.b_if),
            LOW,
            "    check_unicast_src\n",
            "",
        ),
    )?;
    b.wait_for_state(INSTANCE, "MASTER", SETTLE)?;
    let before = counter(&b, "unicast_source")?;
    let addresses = vec![family.vip_address()];
    let advert = Advert::v3(VRID, 250, Duration::from_secs(1), addresses);
    let mut burst = AdvertBurst::new(5, Duration::from_millis(200));
    burst.destination = Some(family.node(1).parse()?);
    routed
        .router
        .send_adverts(&routed.router_b, &advert, burst)?;
    lab::wait_until(
        "b counts the router's adverts as unicast_source drops",
        Duration::from_secs(5),
        || Ok(counter(&b, "unicast_source")? >= before + 5),
    )
    .with_context(|| {
        format!(
            "b's counters: {:?}",
            b.status().map(|s| s["counters"].clone())
        )
    })?;
    holds(&b, "MASTER", Duration::from_secs(2))?;
    ensure!(
        counter(&b, "accepted")? == 0,
        "b accepted an advert from a non-peer"
    );
    Ok(())
}

#[test]
fn check_unicast_src_drops_a_non_peer_ipv4() -> Result<()> {
    non_peer_source_is_dropped(Family::V4, "ucrsrc4")
}

#[test]
fn check_unicast_src_drops_a_non_peer_ipv6() -> Result<()> {
    non_peer_source_is_dropped(Family::V6, "ucrsrc6")
}

/// a sends with `unicast_ttl 250`, so its adverts reach b with 249. A range
/// that excludes it drops them (`ttl`: both end master); a reload to a
/// range that holds it makes b backup.
fn peer_ttl_range_is_enforced(family: Family, prefix: &str) -> Result<()> {
    let routed = Routed::new(prefix, family)?;
    let a = AgentNode::start(
        &routed.a,
        &config(
            family,
            0,
            Some(&routed.a_if),
            HIGH,
            "    unicast_ttl 250\n",
            "",
        ),
    )?;
    a.wait_for_state(INSTANCE, "MASTER", SETTLE)?;
    let b_config = |options: &str| config(family, 1, Some(&routed.b_if), LOW, "", options);
    let b = AgentNode::start(&routed.b, &b_config(" min_ttl 250 max_ttl 255"))?;
    b.wait_for_state(INSTANCE, "MASTER", SETTLE)?;
    lab::wait_until(
        "b counts a's adverts as ttl drops",
        Duration::from_secs(5),
        || Ok(counter(&b, "ttl")? >= 2),
    )?;
    ensure!(counter(&b, "accepted")? == 0, "b accepted a TTL 249 advert");
    b.reload(&b_config(" min_ttl 249 max_ttl 249"))?;
    b.wait_for_state(INSTANCE, "BACKUP", SETTLE)?;
    ensure!(
        counter(&b, "accepted")? > 0,
        "b backs off without accepting"
    );
    Ok(())
}

#[test]
fn unicast_ttl_and_peer_ttl_range_ipv4() -> Result<()> {
    peer_ttl_range_is_enforced(Family::V4, "ucrttl4")
}

#[test]
fn unicast_ttl_and_peer_ttl_range_ipv6() -> Result<()> {
    peer_ttl_range_is_enforced(Family::V6, "ucrttl6")
}

/// The agent on a's side, keepalived 2.2.7 on b's, both role assignments:
/// one master, and the backup takes over when the master goes.
fn keepalived_interop(family: Family, prefix: &str) -> Result<()> {
    lab::require_tool("keepalived")?;
    for agent_high in [true, false] {
        let routed = Routed::new(prefix, family)?;
        let (agent_prio, keepalived_prio) = if agent_high { (HIGH, LOW) } else { (LOW, HIGH) };
        let agent = AgentNode::start(
            &routed.a,
            &config(family, 0, Some(&routed.a_if), agent_prio, "", ""),
        )?;
        let keepalived = Keepalived::start(
            &routed.b,
            &config(family, 1, Some(&routed.b_if), keepalived_prio, "", ""),
        )?;
        if agent_high {
            agent.wait_for_state(INSTANCE, "MASTER", SETTLE)?;
            keepalived.wait_for_state(INSTANCE, "BACKUP", SETTLE)?;
            thread::sleep(Duration::from_secs(4));
            ensure!(
                !keepalived
                    .log_text()
                    .contains(&format!("({INSTANCE}) Entering MASTER STATE")),
                "keepalived became master beside the agent:\n{}",
                keepalived.log_text()
            );
            ensure!(agent.state(INSTANCE)? == "MASTER", "the agent lost MASTER");
            agent.process().kill9()?;
            keepalived.wait_for_state(INSTANCE, "MASTER", SETTLE)?;
        } else {
            keepalived.wait_for_state(INSTANCE, "MASTER", SETTLE)?;
            agent.wait_for_state(INSTANCE, "BACKUP", SETTLE)?;
            holds(&agent, "BACKUP", Duration::from_secs(4))?;
            keepalived.stop()?;
            agent.wait_for_state(INSTANCE, "MASTER", SETTLE)?;
        }
    }
    Ok(())
}

#[test]
fn keepalived_interop_across_a_router_ipv4() -> Result<()> {
    keepalived_interop(Family::V4, "ucrka4")
}

#[test]
fn keepalived_interop_across_a_router_ipv6() -> Result<()> {
    keepalived_interop(Family::V6, "ucrka6")
}
