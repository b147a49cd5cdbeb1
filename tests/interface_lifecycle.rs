//! Interfaces come and go under a running agent (issue 10, item 4): the
//! VRRP interface deleted and re-created (a new ifindex), renamed away and
//! back, taken down and up, and its own address changed. While the
//! interface is missing or down the instance is FAULT (as keepalived), the
//! peer takes over; once it is back the agent re-attaches XDP/TC to the
//! current ifindex, re-opens its sockets, refreshes its own addresses and
//! wins back the VIP with adverts the peer hears.
//!
//! Hosts `a` (priority 150) and `b` (priority 100) run the agent on a veth
//! `vr0` plugged into the switch (the test creates `a`'s end itself, so it
//! can delete and re-create it while the peer stays); `c` probes a UDP echo
//! bound to the VIP on both routers (replies come from the VIP, so only the
//! holder answers, and each server counts what it answered).

use std::net::{IpAddr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lab::{AgentNode, BRIDGE, Host, Lab, Switch, UdpEcho, single_vip_config};

const VRRP_IF: &str = "vr0";
/// `a`'s port on the switch.
const A_PORT: &str = "pa0";
const A_ADDR: &str = "198.51.100.1";
const B_ADDR: &str = "198.51.100.2";
const C_ADDR: &str = "198.51.100.3";
const VIP: &str = "198.51.100.100";
const ECHO_PORT: u16 = 7201;
const WAIT: Duration = Duration::from_secs(15);

fn vip() -> IpAddr {
    VIP.parse().expect("VIP literal")
}

/// Plugs `a` into the switch with a veth named `vr0`, up, not addressed.
fn plug_a_bare(switch: &Switch, a: &Host) -> Result<()> {
    let sw = switch.host();
    sw.ip(&[
        "link",
        "add",
        A_PORT,
        "type",
        "veth",
        "peer",
        "name",
        VRRP_IF,
        "netns",
        a.netns(),
    ])?;
    sw.ip(&["link", "set", "dev", A_PORT, "master", BRIDGE, "up"])?;
    a.link_up(VRRP_IF)
}

/// [`plug_a_bare`], addressed.
fn plug_a(switch: &Switch, a: &Host) -> Result<()> {
    plug_a_bare(switch, a)?;
    a.add_address(VRRP_IF, &format!("{A_ADDR}/24"))?;
    Ok(())
}

struct Net {
    a: Host,
    c: Host,
    switch: Switch,
    _lab: Lab,
}

struct Setup {
    net: Net,
    a: AgentNode,
    b: AgentNode,
    echo_a: UdpEcho,
    echo_b: UdpEcho,
}

/// Both routers running, `a` master, `b` backup, the VIP answering from `a`.
fn converge(prefix: &str) -> Result<Setup> {
    let lab = Lab::new(prefix)?;
    let switch = lab.add_switch("sw")?;
    let (a, b, c) = (lab.add_host("a")?, lab.add_host("b")?, lab.add_host("c")?);
    plug_a(&switch, &a)?;
    let b_if = lab.attach(&b, &switch)?;
    let c_if = lab.attach(&c, &switch)?;
    b.add_address(&b_if, &format!("{B_ADDR}/24"))?;
    c.add_address(&c_if, &format!("{C_ADDR}/24"))?;
    let echo_a = a.serve_udp_echo(SocketAddr::new(vip(), ECHO_PORT))?;
    let echo_b = b.serve_udp_echo(SocketAddr::new(vip(), ECHO_PORT))?;
    let agent_a = AgentNode::start(&a, &single_vip_config(VRRP_IF, 150, "0.2", VIP))?;
    agent_a.wait_for_state("VI_1", "MASTER", WAIT)?;
    let agent_b = AgentNode::start(&b, &single_vip_config(&b_if, 100, "0.2", VIP))?;
    agent_b.wait_for_state("VI_1", "BACKUP", WAIT)?;
    let setup = Setup {
        net: Net {
            a,
            c,
            switch,
            _lab: lab,
        },
        a: agent_a,
        b: agent_b,
        echo_a,
        echo_b,
    };
    setup.vip_answers_from("a")?;
    Ok(setup)
}

impl Setup {
    /// Probes the VIP until only `node`'s server answers it (5 answers in a
    /// row from it, none from the other).
    fn vip_answers_from(&self, node: &str) -> Result<()> {
        let (holder, other) = match node {
            "a" => (&self.echo_a, &self.echo_b),
            _ => (&self.echo_b, &self.echo_a),
        };
        let target = SocketAddr::new(vip(), ECHO_PORT);
        let started = Instant::now();
        let mut in_a_row = 0;
        while in_a_row < 5 {
            ensure!(
                started.elapsed() < WAIT,
                "the VIP did not answer from {node} only within {WAIT:?}"
            );
            let (holder_before, other_before) = (holder.answered(), other.answered());
            let answered = self
                .net
                .c
                .udp_echo_once(target, Duration::from_millis(200))
                .is_ok();
            if answered && holder.answered() > holder_before && other.answered() == other_before {
                in_a_row += 1;
            } else {
                in_a_row = 0;
                thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// `a` master again, `b` a backup that keeps hearing `a`'s adverts from
    /// `a_source` (it stays backup well past Master_Down_Interval), the VIP
    /// answering from `a`, and `a`'s XDP program on the current `vr0`.
    fn a_leads_again(&self, a_source: &str) -> Result<()> {
        self.a.wait_for_state("VI_1", "MASTER", WAIT)?;
        self.b.wait_for_state("VI_1", "BACKUP", WAIT)?;
        // Master_Down_Interval is about 0.7 s: three of them without a
        // transition mean the adverts flow.
        let transitions = self.b.instance("VI_1")?["transitions"].as_u64();
        thread::sleep(Duration::from_secs(2));
        let b = self.b.instance("VI_1")?;
        ensure!(
            b["state"] == "BACKUP" && b["transitions"].as_u64() == transitions,
            "b did not stay backup: {b}"
        );
        ensure!(
            b["master_address"] == a_source,
            "b does not hear a's adverts from {a_source}: {b}"
        );
        ensure!(
            b["last_advert_age_ms"]
                .as_u64()
                .is_some_and(|age| age < 1000),
            "b heard no recent advert: {b}"
        );
        self.vip_answers_from("a")?;
        self.xdp_on_current_interface()
    }

    /// The XDP program is attached to the `vr0` that exists now (its
    /// ifindex), and its links are pinned under the name.
    fn xdp_on_current_interface(&self) -> Result<()> {
        let ifindex = self.net.a.ifindex(VRRP_IF)?;
        ensure!(
            xdp_program_on(&self.net.a, VRRP_IF)?.as_deref() == Some("vrrp_rx"),
            "vrrp_rx is not attached to {VRRP_IF} (ifindex {ifindex})"
        );
        let pins = self.a.pin_dir().join("links").join(VRRP_IF);
        ensure!(
            pins.exists(),
            "the links of {VRRP_IF} are not pinned under {}",
            pins.display()
        );
        Ok(())
    }

    /// `a` stays FAULT for `period` (checked every 50 ms).
    fn a_stays_fault(&self, period: Duration) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < period {
            let a = self.a.instance("VI_1")?;
            ensure!(a["state"] == "FAULT", "a left FAULT too early: {a}");
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `a` is FAULT and stays so, `b` took over and holds the VIP.
    fn b_took_over(&self) -> Result<()> {
        self.a.wait_for_state("VI_1", "FAULT", WAIT)?;
        self.b.wait_for_state("VI_1", "MASTER", WAIT)?;
        self.vip_answers_from("b")?;
        let a = self.a.state("VI_1")?;
        if a != "FAULT" {
            bail!("a left FAULT while its interface is unusable: {a}");
        }
        Ok(())
    }
}

#[test]
fn interface_deleted_and_recreated_gets_a_new_datapath_and_wins_back_the_vip() -> Result<()> {
    let setup = converge("ifrecreate")?;
    let old_index = setup.net.a.ifindex(VRRP_IF)?;
    setup.net.a.ip(&["link", "del", VRRP_IF])?;
    setup.b_took_over()?;

    // As a network manager does it: the link first, its address later.
    // Without an address to advertise from, the instance stays FAULT (as
    // keepalived's does).
    plug_a_bare(&setup.net.switch, &setup.net.a)?;
    let new_index = setup.net.a.ifindex(VRRP_IF)?;
    ensure!(
        new_index != old_index,
        "the re-created interface kept its ifindex"
    );
    setup.a_stays_fault(Duration::from_millis(1500))?;
    setup.net.a.add_address(VRRP_IF, &format!("{A_ADDR}/24"))?;
    setup.a_leads_again(A_ADDR)
}

#[test]
fn interface_renamed_away_and_back_is_fault_then_master_again() -> Result<()> {
    let setup = converge("ifrename")?;
    // An interface is renamed while down.
    setup.net.a.link_down(VRRP_IF)?;
    setup
        .net
        .a
        .ip(&["link", "set", "dev", VRRP_IF, "name", "vrtmp"])?;
    setup.net.a.link_up("vrtmp")?;
    setup.b_took_over()?;
    // A device under another name is not the configured interface: the
    // agent's programs leave it alone.
    ensure!(
        xdp_program_on(&setup.net.a, "vrtmp")?.is_none(),
        "vrrp_rx stayed on the interface renamed away"
    );
    // Back under its name, in the state a network manager leaves it.
    setup.net.a.link_down("vrtmp")?;
    setup
        .net
        .a
        .ip(&["link", "set", "dev", "vrtmp", "name", VRRP_IF])?;
    setup.net.a.link_up(VRRP_IF)?;
    setup.a_leads_again(A_ADDR)
}

#[test]
fn interface_down_then_up_is_fault_then_master_again() -> Result<()> {
    let setup = converge("ifdownup")?;
    setup.net.a.link_down(VRRP_IF)?;
    setup.b_took_over()?;
    setup.net.a.link_up(VRRP_IF)?;
    setup.a_leads_again(A_ADDR)
}

#[test]
fn interface_readdressed_while_down_comes_back_with_its_new_address() -> Result<()> {
    let setup = converge("ifreaddr")?;
    const NEW: &str = "198.51.100.21";
    setup.net.a.link_down(VRRP_IF)?;
    setup.b_took_over()?;
    setup.net.a.del_address(VRRP_IF, &format!("{A_ADDR}/24"))?;
    setup.net.a.add_address(VRRP_IF, &format!("{NEW}/24"))?;
    setup.net.a.link_up(VRRP_IF)?;
    setup.a_leads_again(NEW)
}

#[test]
fn own_address_removed_is_fault_until_one_returns() -> Result<()> {
    let setup = converge("ifnoaddr")?;
    setup
        .net
        .a
        .set_sysctl(&format!("net.ipv4.conf.{VRRP_IF}.promote_secondaries"), "1")?;
    // Only the VIP is left: nothing to advertise from.
    setup.net.a.del_address(VRRP_IF, &format!("{A_ADDR}/24"))?;
    setup.b_took_over()?;
    setup.a_stays_fault(Duration::from_millis(1000))?;
    setup.net.a.add_address(VRRP_IF, &format!("{A_ADDR}/24"))?;
    setup.a_leads_again(A_ADDR)
}

#[test]
fn own_address_changed_moves_the_advert_source_and_local_addresses() -> Result<()> {
    let setup = converge("ifaddr")?;
    const NEW: &str = "198.51.100.11";
    // As systemd's default sysctls do: deleting the primary address
    // promotes the next one instead of removing every secondary.
    setup
        .net
        .a
        .set_sysctl(&format!("net.ipv4.conf.{VRRP_IF}.promote_secondaries"), "1")?;
    setup.net.a.add_address(VRRP_IF, &format!("{NEW}/24"))?;
    setup.net.a.del_address(VRRP_IF, &format!("{A_ADDR}/24"))?;
    setup.a_leads_again(NEW)?;
    // XDP knows the new address as ours (it drops our own adverts) and
    // forgot the old one.
    let map = setup.a.pinned_maps_dir().join("LOCAL_ADDRESSES");
    let map = map.to_str().context("pin path is not UTF-8")?;
    let out = setup
        .net
        .a
        .exec(&["bpftool", "-j", "map", "dump", "pinned", map])?;
    let dump: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let keys: Vec<[u8; 4]> = dump
        .as_array()
        .context("map dump is not a list")?
        .iter()
        .filter_map(|entry| {
            let bytes: Vec<u8> = entry["key"]
                .as_array()?
                .iter()
                .filter_map(|byte| {
                    let text = byte.as_str()?;
                    u8::from_str_radix(text.trim_start_matches("0x"), 16).ok()
                })
                .collect();
            // AddressKey: family (1 byte), padding, then the address.
            (bytes.first() == Some(&4)).then(|| [bytes[4], bytes[5], bytes[6], bytes[7]])
        })
        .collect();
    let octets = |text: &str| -> [u8; 4] { text.parse::<std::net::Ipv4Addr>().unwrap().octets() };
    ensure!(
        keys.contains(&octets(NEW)) && !keys.contains(&octets(A_ADDR)),
        "LOCAL_ADDRESSES does not follow the change: {keys:?}"
    );
    Ok(())
}

/// The name of the XDP program on `iface` as it exists now (`bpftool net`
/// lists attachments by device name and current ifindex).
fn xdp_program_on(host: &Host, iface: &str) -> Result<Option<String>> {
    let ifindex = host.ifindex(iface)?;
    let out = host.exec(&["bpftool", "-j", "net", "show"])?;
    let net: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let id = net
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|entry| entry["xdp"].as_array().into_iter().flatten())
        .find(|xdp| xdp["devname"] == iface && xdp["ifindex"].as_u64() == Some(u64::from(ifindex)))
        .and_then(|xdp| xdp["id"].as_u64());
    let Some(id) = id else {
        return Ok(None);
    };
    let out = host.exec(&["bpftool", "-j", "prog", "show", "id", &id.to_string()])?;
    let prog: serde_json::Value = serde_json::from_str(&out.stdout)?;
    Ok(prog["name"].as_str().map(str::to_owned))
}

/// keepalived's `track_interface` follows the link alone: an interface that
/// lost its only address makes the instances *running* on it FAULT (nothing
/// to advertise from), but an instance that only tracks it stays MASTER.
#[test]
fn an_unaddressed_interface_is_still_up_for_track_interface() -> Result<()> {
    let lab = Lab::new("iftrack")?;
    let sw1 = lab.add_switch("s1")?;
    let sw2 = lab.add_switch("s2")?;
    let a = lab.add_host("a")?;
    let if1 = lab.attach(&a, &sw1)?;
    let if2 = lab.attach(&a, &sw2)?;
    a.add_address(&if1, "198.51.100.41/24")?;
    a.add_address(&if2, "203.0.113.41/24")?;
    let config = format!(
        "vrrp_instance ON_IF1 {{\n interface {if1}\n virtual_router_id 41\n priority 150\n advert_int 0.1\n virtual_ipaddress {{\n  198.51.100.141/24\n }}\n}}\n\
         vrrp_instance TRACKS_IF1 {{\n interface {if2}\n virtual_router_id 42\n priority 150\n advert_int 0.1\n track_interface {{\n  {if1}\n }}\n virtual_ipaddress {{\n  203.0.113.141/24\n }}\n}}\n"
    );
    let node = AgentNode::start(&a, &config)?;
    node.wait_for_state("ON_IF1", "MASTER", WAIT)?;
    node.wait_for_state("TRACKS_IF1", "MASTER", WAIT)?;
    let transitions = node.instance("TRACKS_IF1")?["transitions"].clone();

    a.del_address(&if1, "198.51.100.41/24")?;
    node.wait_for_state("ON_IF1", "FAULT", WAIT)?;
    thread::sleep(Duration::from_millis(1000));
    let seen = node.instance("TRACKS_IF1")?;
    ensure!(
        seen["state"] == "MASTER" && seen["transitions"] == transitions,
        "TRACKS_IF1 left MASTER although {if1}'s link stayed up: {seen}"
    );

    a.add_address(&if1, "198.51.100.41/24")?;
    node.wait_for_state("ON_IF1", "MASTER", WAIT)?;

    // The link itself going down still faults the tracking instance.
    a.link_down(&if1)?;
    node.wait_for_state("TRACKS_IF1", "FAULT", WAIT)?;
    a.link_up(&if1)?;
    node.wait_for_state("TRACKS_IF1", "MASTER", WAIT)?;
    node.wait_for_state("ON_IF1", "MASTER", WAIT)?;
    Ok(())
}
