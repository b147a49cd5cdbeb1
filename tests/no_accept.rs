//! RFC 5798 §6.4.3 Accept_Mode with traffic: a master in `no_accept` mode
//! that is not the address owner drops packets addressed to its virtual
//! addresses (in XDP, counted as `vip_ingress_blocked`) while still answering
//! ARP and neighbour discovery for them; in `accept` mode, with no keyword
//! (keepalived's default without `vrrp_strict`), and as address owner
//! (priority 255) the same traffic is answered.
//!
//! Hosts `a` (the agent, alone, so it becomes master) and `c` (the client)
//! on one switch. `a` runs an IPv4 and an IPv6 instance and a UDP echo
//! server bound to each VIP, so answers are sourced from the VIP itself.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lab::{AgentNode, Host, Lab, Switch};

const A_V4: &str = "192.0.2.1/24";
const C_V4: &str = "192.0.2.3/24";
const A_V6: &str = "2001:db8::1/64";
const C_V6: &str = "2001:db8::3/64";
const VIP_V4: &str = "192.0.2.100";
const VIP_V6: &str = "2001:db8::100";
const ECHO_PORT: u16 = 7007;
/// Probes of each kind (UDP, ICMP echo) per address family.
const PROBES: u64 = 3;
/// How long a client waits for one answer; a lost answer costs this.
const ANSWER_WAIT: Duration = Duration::from_millis(500);
/// Bound for things that take well under a second (election, address add).
const WAIT: Duration = Duration::from_secs(10);

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address literal")
}

struct Net {
    _lab: Lab,
    _switch: Switch,
    a: Host,
    c: Host,
    a_if: String,
    c_if: String,
}

impl Net {
    fn new(prefix: &str) -> Result<Self> {
        let lab = Lab::new(prefix)?;
        let switch = lab.add_switch("sw")?;
        let a = lab.add_host("a")?;
        let c = lab.add_host("c")?;
        let a_if = lab.attach(&a, &switch)?;
        let c_if = lab.attach(&c, &switch)?;
        for (host, iface, addresses) in [(&a, &a_if, [A_V4, A_V6]), (&c, &c_if, [C_V4, C_V6])] {
            for cidr in addresses {
                host.add_address(iface, cidr)?;
            }
        }
        // Only the client's own resolution may create its neighbour entries
        // (the default, stated because the test relies on it): a gratuitous
        // ARP from the master must not make an unanswered ARP look answered.
        c.set_sysctl("net/ipv4/conf/all/arp_accept", "0")?;
        // A stale neighbour is probed at once with a unicast solicitation
        // addressed to the VIP itself: the case the ND exception exists for.
        c.set_sysctl(
            &format!("net/ipv6/neigh/{c_if}/delay_first_probe_time"),
            "0",
        )?;
        Ok(Self {
            _lab: lab,
            _switch: switch,
            a,
            c,
            a_if,
            c_if,
        })
    }
}

/// `accept_line`: `accept`, `no_accept` or nothing (the default).
fn config(interface: &str, priority: u8, accept_line: &str) -> String {
    let instance = |name: &str, vrid: u8, vip: &str| {
        format!(
            "vrrp_instance {name} {{\n\
             \x20   state MASTER\n\
             \x20   interface {interface}\n\
             \x20   virtual_router_id {vrid}\n\
             \x20   priority {priority}\n\
             \x20   advert_int 0.1\n\
             \x20   {accept_line}\n\
             \x20   virtual_ipaddress {{\n\
             \x20       {vip}\n\
             \x20   }}\n\
             }}\n"
        )
    };
    format!(
        "global_defs {{\n    router_id nodeA\n    vrrp_version 3\n}}\n{}{}",
        instance("VI_4", 51, &format!("{VIP_V4}/24")),
        instance("VI_6", 52, &format!("{VIP_V6}/64")),
    )
}

/// A UDP echo server bound to one VIP, on a thread inside the master.
struct EchoServer {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Result<u64>>,
}

impl EchoServer {
    fn start(host: &Host, vip: IpAddr) -> Result<Self> {
        let socket = host
            .run(move || UdpSocket::bind(SocketAddr::new(vip, ECHO_PORT)))?
            .with_context(|| format!("cannot bind the echo server to {vip}"))?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let started = Instant::now();
            let mut received = 0;
            let mut buf = [0u8; 256];
            // Bounded even if the test forgets to stop it.
            while !flag.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                received += 1;
                socket.send_to(&buf[..len], from)?;
            }
            Ok(received)
        });
        Ok(Self { stop, handle })
    }

    /// Stops the server; returns how many datagrams reached it.
    fn stop(self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("echo server thread panicked"))?
    }
}

/// UDP probes from `host` to the VIP's echo port; counts answers that come
/// from the VIP itself and carry the probe back.
fn udp_answers(host: &Host, vip: IpAddr) -> Result<u64> {
    host.run(move || -> Result<u64> {
        let local: IpAddr = if vip.is_ipv4() {
            ip(C_V4.trim_end_matches("/24"))
        } else {
            ip(C_V6.trim_end_matches("/64"))
        };
        let socket = UdpSocket::bind(SocketAddr::new(local, 0))?;
        let target = SocketAddr::new(vip, ECHO_PORT);
        let mut answered = 0;
        for n in 0..PROBES {
            let probe = format!("no-accept probe {n}");
            socket.send_to(probe.as_bytes(), target)?;
            let deadline = Instant::now() + ANSWER_WAIT;
            let mut buf = [0u8; 256];
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                socket.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
                match socket.recv_from(&mut buf) {
                    Ok((len, from)) if from == target && &buf[..len] == probe.as_bytes() => {
                        answered += 1;
                        break;
                    }
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
        }
        Ok(answered)
    })?
}

fn echo_answers(host: &Host, vip: IpAddr) -> u64 {
    (0..PROBES)
        .filter(|_| host.icmp_echo(vip, ANSWER_WAIT).is_ok())
        .count() as u64
}

/// The link-layer address `host` resolved `address` to on `iface`, if the
/// neighbour entry is usable (ARP / ND was answered).
fn resolved_neighbour(host: &Host, iface: &str, address: &str) -> Result<Option<String>> {
    let out = host.exec(&["ip", "-j", "neigh", "show", "to", address, "dev", iface])?;
    let entries: serde_json::Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("ip -j neigh printed no JSON: {}", out.stdout))?;
    Ok(entries.as_array().and_then(|all| {
        all.iter().find_map(|entry| {
            let states = entry["state"].as_array()?;
            let unusable = states
                .iter()
                .any(|state| state == "FAILED" || state == "INCOMPLETE");
            if unusable {
                return None;
            }
            entry["lladdr"].as_str().map(str::to_owned)
        })
    }))
}

/// Marks the client's entry for `vip` stale and sends it one datagram: the
/// kernel then probes the VIP with unicast solicitations (three, a second
/// apart) and the entry turns REACHABLE only if one is answered.
fn unicast_ns_answered(host: &Host, iface: &str, vip: &str, mac: &str) -> Result<bool> {
    host.exec(&[
        "ip", "neigh", "replace", vip, "dev", iface, "lladdr", mac, "nud", "stale",
    ])?;
    let target = SocketAddr::new(ip(vip), ECHO_PORT);
    host.run(move || -> Result<()> {
        UdpSocket::bind("[::]:0")?.send_to(b"wake the neighbour", target)?;
        Ok(())
    })??;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = host.exec(&["ip", "-j", "neigh", "show", "to", vip, "dev", iface])?;
        let entries: serde_json::Value = serde_json::from_str(&out.stdout)
            .with_context(|| format!("ip -j neigh printed no JSON: {}", out.stdout))?;
        let state = entries[0]["state"][0].as_str().unwrap_or("none").to_owned();
        match state.as_str() {
            "REACHABLE" => return Ok(true),
            "FAILED" | "none" => return Ok(false),
            _ if Instant::now() >= deadline => return Ok(false),
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn counter(node: &AgentNode, name: &str) -> Result<u64> {
    let status = node.status()?;
    status["counters"][name]
        .as_u64()
        .with_context(|| format!("status has no counter {name}: {status}"))
}

/// What the client saw for one VIP.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    udp_answered: u64,
    echo_answered: u64,
    /// Datagrams that reached the server bound to the VIP.
    server_received: u64,
    /// The master's MAC, as the client resolved the VIP.
    neighbour: Option<String>,
    /// IPv6 only: a stale entry for the VIP became reachable again, so the
    /// client's unicast neighbour solicitation to the VIP was answered.
    unicast_ns_answered: Option<bool>,
}

struct Outcome {
    v4: Seen,
    v6: Seen,
    blocked: u64,
    master_mac: String,
}

/// Starts the agent with `priority` and `accept_line`, waits for MASTER and
/// the VIPs, then probes each VIP from the client.
fn run_case(prefix: &str, priority: u8, accept_line: &str) -> Result<Outcome> {
    let net = Net::new(prefix)?;
    let node = AgentNode::start(&net.a, &config(&net.a_if, priority, accept_line))?;
    for instance in ["VI_4", "VI_6"] {
        node.wait_for_state(instance, "MASTER", WAIT)?;
    }
    let master_mac = net
        .a
        .exec(&["cat", &format!("/sys/class/net/{}/address", net.a_if)])?
        .stdout
        .trim()
        .to_owned();
    let blocked_before = counter(&node, "vip_ingress_blocked")?;
    let mut seen = Vec::new();
    for vip in [VIP_V4, VIP_V6] {
        net.a.wait_for_address(&net.a_if, ip(vip), WAIT)?;
        let server = EchoServer::start(&net.a, ip(vip))?;
        // Start unresolved, so only an answered ARP / NS can fill the entry.
        net.c
            .exec(&["ip", "neigh", "flush", "to", vip, "dev", &net.c_if])?;
        let udp_answered = udp_answers(&net.c, ip(vip))?;
        let echo_answered = echo_answers(&net.c, ip(vip));
        let neighbour = resolved_neighbour(&net.c, &net.c_if, vip)?;
        let server_received = server.stop()?;
        let unicast_ns_answered = match (ip(vip), &neighbour) {
            (IpAddr::V6(_), Some(mac)) => Some(unicast_ns_answered(&net.c, &net.c_if, vip, mac)?),
            _ => None,
        };
        seen.push(Seen {
            udp_answered,
            echo_answered,
            server_received,
            neighbour,
            unicast_ns_answered,
        });
    }
    let blocked = counter(&node, "vip_ingress_blocked")? - blocked_before;
    let v6 = seen.pop().context("IPv6 result")?;
    let v4 = seen.pop().context("IPv4 result")?;
    println!("{accept_line:?} priority {priority}: v4 {v4:?}, v6 {v6:?}, blocked {blocked}");
    Ok(Outcome {
        v4,
        v6,
        blocked,
        master_mac,
    })
}

fn ensure_answered(outcome: &Outcome, what: &str) -> Result<()> {
    for seen in [&outcome.v4, &outcome.v6] {
        let expected = Seen {
            udp_answered: PROBES,
            echo_answered: PROBES,
            server_received: PROBES,
            neighbour: Some(outcome.master_mac.clone()),
            unicast_ns_answered: seen.unicast_ns_answered.map(|_| true),
        };
        ensure!(
            *seen == expected,
            "{what}: every probe must be answered from the VIP; saw {seen:?}"
        );
    }
    ensure!(
        outcome.blocked == 0,
        "{what}: vip_ingress_blocked moved by {}",
        outcome.blocked
    );
    Ok(())
}

#[test]
fn no_accept_master_drops_traffic_to_its_vips_but_answers_arp_and_nd() -> Result<()> {
    let outcome = run_case("noaccept", 100, "no_accept")?;
    for (family, seen) in [("IPv4", &outcome.v4), ("IPv6", &outcome.v6)] {
        let expected = Seen {
            udp_answered: 0,
            echo_answered: 0,
            server_received: 0,
            neighbour: Some(outcome.master_mac.clone()),
            unicast_ns_answered: seen.unicast_ns_answered.map(|_| true),
        };
        ensure!(
            *seen == expected,
            "{family}: a no-accept master must drop UDP and ICMP to the VIP before the stack, and still answer ARP / ND; saw {seen:?}"
        );
    }
    // Every UDP probe and echo request of both families and the datagram
    // that woke the stale IPv6 neighbour, and nothing else: not the
    // solicitations.
    let expected = 4 * PROBES + 1;
    ensure!(
        outcome.blocked == expected,
        "vip_ingress_blocked moved by {}, expected {expected}",
        outcome.blocked,
    );
    Ok(())
}

#[test]
fn accept_master_answers_traffic_to_its_vips() -> Result<()> {
    ensure_answered(&run_case("accept", 100, "accept")?, "accept")
}

#[test]
fn master_without_accept_keyword_answers_as_keepalived_does() -> Result<()> {
    ensure_answered(&run_case("acceptdef", 100, "")?, "no keyword")
}

#[test]
fn address_owner_answers_even_with_no_accept() -> Result<()> {
    ensure_answered(&run_case("owner", 255, "no_accept")?, "priority 255")
}
