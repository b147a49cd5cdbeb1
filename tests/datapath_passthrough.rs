//! What `vrrp_rx` takes away from the node's stack, end to end: only the
//! adverts of instances configured on the interface they arrive on.
//! Adverts for other VRIDs reach the stack (a raw VRRP socket hears them)
//! and count as `passed_unknown`; an 802.1Q-tagged advert on the parent
//! interface is not taken for the parent's instance; and `status --json`
//! keeps the counters per interface.
//!
//! Host b runs the agent with VI_1 (VRID 51) on its first link to host a
//! and VI_2 (VRID 52) on its second; host a plays the other routers.

use std::net::{IpAddr, Ipv4Addr};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lab::{Advert, AdvertBurst, AgentNode, Host, Lab, Link, ipv4_advert_frame};
use serde_json::Value;

const A1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const WAIT: Duration = Duration::from_secs(10);

struct Fixture {
    _lab: Lab,
    a: Host,
    agent: AgentNode,
    link1: Link,
    link2: Link,
}

impl Fixture {
    fn new(prefix: &str) -> Result<Self> {
        let lab = Lab::new(prefix)?;
        let a = lab.add_host("a")?;
        let b = lab.add_host("b")?;
        let link1 = lab.connect(&a, &b)?;
        let link2 = lab.connect(&a, &b)?;
        a.add_address(&link1.a, &format!("{A1}/24"))?;
        b.add_address(&link1.b, "192.0.2.2/24")?;
        a.add_address(&link2.a, "198.51.100.1/24")?;
        b.add_address(&link2.b, "198.51.100.2/24")?;
        let config = format!(
            "global_defs {{\n    router_id b\n    vrrp_version 3\n}}\n{}{}",
            instance("VI_1", &link1.b, 51),
            instance("VI_2", &link2.b, 52)
        );
        let agent = AgentNode::start(&b, &config)?;
        agent.wait_for_state("VI_1", "MASTER", WAIT)?;
        agent.wait_for_state("VI_2", "MASTER", WAIT)?;
        Ok(Self {
            _lab: lab,
            a,
            agent,
            link1,
            link2,
        })
    }

    /// The datapath counters of the agent's interface `iface`.
    fn counters(&self, iface: &str) -> Result<Value> {
        let status = self.agent.status()?;
        let counters = status["interfaces"][iface].clone();
        ensure!(
            counters.is_object(),
            "status --json has no counters for interface {iface}: {status}"
        );
        Ok(counters)
    }

    /// Polls until `check` holds for the counters of `iface`.
    fn wait_for_counters(&self, iface: &str, check: impl Fn(&Value) -> bool) -> Result<Value> {
        let started = Instant::now();
        loop {
            let counters = self.counters(iface)?;
            if check(&counters) {
                return Ok(counters);
            }
            ensure!(
                started.elapsed() < WAIT,
                "counters of {iface} did not reach the expected values within {WAIT:?}: {counters}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn instance(name: &str, interface: &str, vrid: u8) -> String {
    format!(
        "vrrp_instance {name} {{\n\
         \x20   state BACKUP\n\
         \x20   interface {interface}\n\
         \x20   virtual_router_id {vrid}\n\
         \x20   priority 100\n\
         \x20   advert_int 0.1\n\
         \x20   virtual_ipaddress {{\n\
         \x20       203.0.113.{vrid}/24\n\
         \x20   }}\n\
         }}\n"
    )
}

fn advert(vrid: u8, priority: u8) -> Advert {
    let vip: IpAddr = Ipv4Addr::new(203, 0, 113, vrid).into();
    Advert::v3(vrid, priority, Duration::from_millis(100), vec![vip])
}

fn count(counters: &Value, name: &str) -> u64 {
    counters[name].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn an_unknown_vrid_reaches_the_stack_and_a_configured_one_is_consumed() -> Result<()> {
    let fx = Fixture::new("passunk")?;
    let b1 = fx.link1.b.as_str();
    let listener = fx.agent.host().vrrp_listener(b1)?;
    let burst = AdvertBurst::new(5, Duration::from_millis(20));
    fx.a.send_adverts(&fx.link1.a, &advert(77, 100), burst)?;
    // Lower than the agent's 100: VI_1 stays master, the advert is its peer's.
    fx.a.send_adverts(&fx.link1.a, &advert(51, 50), burst)?;

    let heard: Vec<_> = listener
        .heard(Duration::from_secs(1))?
        .into_iter()
        .filter(|heard| heard.source == IpAddr::V4(A1))
        .collect();
    let vrids: Vec<u8> = heard.iter().map(|heard| heard.vrid).collect();
    ensure!(
        vrids == [77; 5],
        "the stack of host b should hear the 5 VRID 77 adverts and none of VI_1's (consumed in XDP), heard VRIDs {vrids:?}"
    );
    let counters = fx.wait_for_counters(b1, |c| count(c, "accepted") >= 5)?;
    ensure!(
        count(&counters, "passed_unknown") == 5 && count(&counters, "accepted") == 5,
        "5 adverts passed and 5 consumed on {b1}: {counters}"
    );
    ensure!(
        fx.agent.state("VI_1")? == "MASTER",
        "a lower-priority peer must not move VI_1"
    );
    Ok(())
}

#[test]
fn status_json_keeps_the_counters_of_each_interface() -> Result<()> {
    let fx = Fixture::new("passifc")?;
    let (b1, b2) = (fx.link1.b.as_str(), fx.link2.b.as_str());
    let before1 = fx.counters(b1)?;
    let before2 = fx.counters(b2)?;
    fx.a.send_adverts(
        &fx.link1.a,
        &advert(77, 100),
        AdvertBurst::new(3, Duration::from_millis(20)),
    )?;
    fx.a.send_adverts(
        &fx.link2.a,
        &advert(52, 50),
        AdvertBurst::new(4, Duration::from_millis(20)),
    )?;
    let ttl_64 = AdvertBurst {
        ttl: 64,
        ..AdvertBurst::new(2, Duration::from_millis(20))
    };
    fx.a.send_adverts(&fx.link2.a, &advert(52, 50), ttl_64)?;

    let after2 = fx.wait_for_counters(b2, |c| {
        count(c, "accepted") >= count(&before2, "accepted") + 4
            && count(c, "ttl") >= count(&before2, "ttl") + 2
    })?;
    let after1 = fx.wait_for_counters(b1, |c| {
        count(c, "passed_unknown") >= count(&before1, "passed_unknown") + 3
    })?;
    let moved =
        |before: &Value, after: &Value, name: &str| count(after, name) - count(before, name);
    ensure!(
        (
            moved(&before1, &after1, "passed_unknown"),
            moved(&before1, &after1, "accepted"),
            moved(&before1, &after1, "ttl")
        ) == (3, 0, 0),
        "{b1} should count only the 3 passed adverts: before {before1}, after {after1}"
    );
    ensure!(
        (
            moved(&before2, &after2, "accepted"),
            moved(&before2, &after2, "ttl"),
            moved(&before2, &after2, "passed_unknown")
        ) == (4, 2, 0),
        "{b2} should count 4 accepted and 2 TTL drops: before {before2}, after {after2}"
    );
    let status = fx.agent.status()?;
    for name in ["accepted", "passed_unknown", "ttl"] {
        let total = status["counters"][name].as_u64().context("total counter")?;
        let sum: u64 = [b1, b2]
            .iter()
            .map(|iface| count(&status["interfaces"][*iface], name))
            .sum();
        ensure!(
            total == sum,
            "{name}: total {total} is not the sum of the interfaces' {sum}: {status}"
        );
    }
    Ok(())
}

/// An advert carrying an 802.1Q tag in its frame belongs to VLAN 100, not
/// to the instance on the untagged interface: it passes and does not move
/// VI_1, while the same advert untagged takes VI_1's mastership away.
#[test]
fn a_tagged_advert_is_not_taken_for_the_parent_interface_instance() -> Result<()> {
    let fx = Fixture::new("passvlan")?;
    let b1 = fx.link1.b.as_str();
    let before = fx.counters(b1)?;
    let transitions = fx.agent.instance("VI_1")?["transitions"].clone();
    let winning = advert(51, 200);
    let tagged = ipv4_advert_frame(&winning, A1, Some(100))?;
    fx.a.send_frames(&fx.link1.a, &tagged, 5)?;
    let after = fx.wait_for_counters(b1, |c| {
        count(c, "passed_unknown") >= count(&before, "passed_unknown") + 5
    })?;
    // Long enough for the daemon to act on an accepted advert.
    thread::sleep(Duration::from_millis(500));
    let vi_1 = fx.agent.instance("VI_1")?;
    ensure!(
        vi_1["state"] == "MASTER" && vi_1["transitions"] == transitions,
        "a tagged priority-200 advert moved VI_1: {vi_1}"
    );
    ensure!(
        count(&after, "accepted") == count(&before, "accepted"),
        "a tagged advert was accepted for {b1}: before {before}, after {after}"
    );

    let untagged = ipv4_advert_frame(&winning, A1, None)?;
    fx.a.send_frames(&fx.link1.a, &untagged, 5)?;
    fx.agent.wait_for_state("VI_1", "BACKUP", WAIT)?;
    Ok(())
}
