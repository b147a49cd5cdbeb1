//! End-to-end checks of the namespace lab itself: wiring, addressing,
//! reachability, process handling and cleanup (also after a panic).

use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use lab::{Lab, ProbePlan, list_namespaces};

const TIMEOUT: Duration = Duration::from_secs(2);

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test address literal")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address literal")
}

fn pid_alive(pid: u32) -> bool {
    // A zombie is dead for our purposes; /proc/PID/stat field 3 says so.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn veth_hosts_talk_tcp_over_ipv4_and_ipv6_and_vanish_on_drop() -> Result<()> {
    let lab = Lab::new("self")?;
    let a = lab.add_host("a")?;
    let b = lab.add_host("b")?;
    let link = lab.connect(&a, &b)?;
    a.add_address(&link.a, "192.0.2.1/24")?;
    b.add_address(&link.b, "192.0.2.2/24")?;
    a.add_address(&link.a, "2001:db8:1::1/64")?;
    b.add_address(&link.b, "2001:db8:1::2/64")?;

    let v4 = b.serve_tcp(addr("192.0.2.2:7001"))?;
    let v6 = b.serve_tcp(addr("[2001:db8:1::2]:7001"))?;
    ensure!(
        a.tcp_request(v4.address(), TIMEOUT)? == "b",
        "IPv4 answer was not from host b"
    );
    ensure!(
        a.tcp_request(v6.address(), TIMEOUT)? == "b",
        "IPv6 answer was not from host b"
    );
    ensure!(
        v4.served() == 1 && v6.served() == 1,
        "each service should have answered once"
    );

    a.icmp_echo(ip("192.0.2.2"), TIMEOUT)?;
    a.icmp_echo(ip("2001:db8:1::2"), TIMEOUT)?;
    // The link-local address exists as soon as the link is up (DAD is off).
    a.ipv6_link_local(&link.a)?;

    // Hosts are isolated: b's wildcard listener is not reachable via a's loopback.
    let wildcard = b.serve_tcp(addr("0.0.0.0:7004"))?;
    ensure!(b.tcp_request(addr("127.0.0.1:7004"), TIMEOUT)? == "b");
    ensure!(
        a.tcp_connect(addr("127.0.0.1:7004"), Duration::from_millis(300))
            .is_err(),
        "host a reached host b's wildcard listener via loopback; namespaces are not separate"
    );
    drop(wildcard);

    let namespaces = lab.netns_names();
    ensure!(namespaces.len() == 2);
    let listed = list_namespaces()?;
    ensure!(
        namespaces.iter().all(|ns| listed.contains(ns)),
        "namespaces {namespaces:?} not in {listed:?}"
    );

    drop((v4, v6));
    let temp_dir = lab.temp_dir().to_path_buf();
    drop(lab);
    let listed = list_namespaces()?;
    for ns in &namespaces {
        ensure!(
            !listed.contains(ns),
            "namespace {ns} still exists after the lab was dropped"
        );
    }
    ensure!(
        !temp_dir.exists(),
        "lab temp dir {} survived the drop",
        temp_dir.display()
    );
    Ok(())
}

#[test]
fn panicking_test_body_still_cleans_up() -> Result<()> {
    let mut recorded: Option<(Vec<String>, u32)> = None;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new("panic").expect("lab");
        let a = lab.add_host("a").expect("host");
        let sleeper = a.spawn(&["sleep", "60"]).expect("spawn");
        recorded = Some((lab.netns_names(), sleeper.pid()));
        // Keep the process guard alive so only the lab's drop can stop it.
        std::mem::forget(sleeper);
        panic!("deliberate panic inside a lab test body");
    }));
    ensure!(outcome.is_err(), "the closure was supposed to panic");
    let Some((namespaces, pid)) = recorded else {
        anyhow::bail!("the lab was never built, so cleanup was not exercised");
    };
    let listed = list_namespaces()?;
    for ns in &namespaces {
        ensure!(!listed.contains(ns), "namespace {ns} leaked after a panic");
    }
    ensure!(
        !pid_alive(pid),
        "process {pid} spawned in the lab survived the panic"
    );
    Ok(())
}

#[test]
fn switch_joins_three_hosts_on_one_segment() -> Result<()> {
    let lab = Lab::new("switch")?;
    let sw = lab.add_switch("sw")?;
    let hosts = [
        lab.add_host("h1")?,
        lab.add_host("h2")?,
        lab.add_host("h3")?,
    ];
    for (n, host) in hosts.iter().enumerate() {
        let iface = lab.attach(host, &sw)?;
        host.add_address(&iface, &format!("203.0.113.{}/24", n + 1))?;
    }
    let service = hosts[2].serve_tcp(addr("0.0.0.0:7002"))?;
    for client in &hosts[..2] {
        ensure!(client.tcp_request(addr("203.0.113.3:7002"), TIMEOUT)? == "h3");
        client.icmp_echo(ip("203.0.113.3"), TIMEOUT)?;
    }
    ensure!(service.served() == 2);
    Ok(())
}

#[test]
fn host_exec_spawn_and_signals() -> Result<()> {
    let lab = Lab::new("proc")?;
    let a = lab.add_host("a")?;

    let links = a.exec(&["ip", "-o", "link"])?.stdout;
    ensure!(
        links.lines().count() == 1 && links.contains("lo:"),
        "new host should only have lo, got {links}"
    );

    let err = a
        .exec(&["ip", "link", "show", "dev", "nosuchif"])
        .unwrap_err();
    let text = format!("{err:#}");
    ensure!(
        text.contains("nosuchif") && text.contains("in host a"),
        "unhelpful error: {text}"
    );
    ensure!(
        a.add_address("lo", "10.1.2.3/8").is_err(),
        "non-documentation address accepted"
    );

    let talker = a.spawn(&[
        "sh",
        "-c",
        "echo first; echo warn >&2; echo '{\"state\":\"MASTER\"}'; exec sleep 60",
    ])?;
    let line = talker
        .stdout()
        .wait_for(TIMEOUT, |l| l.contains("MASTER"))?;
    ensure!(line == r#"{"state":"MASTER"}"#);
    ensure!(talker.stderr().wait_for(TIMEOUT, |l| l == "warn").is_ok());
    ensure!(std::fs::read_to_string(talker.stdout().path())?.starts_with("first\n"));
    ensure!(
        talker
            .stdout()
            .wait_for(Duration::from_millis(100), |l| l == "first")
            .is_err(),
        "already-consumed lines must not match again"
    );

    talker.kill9()?;
    let status = talker.wait(TIMEOUT)?;
    ensure!(!status.success(), "SIGKILLed process reported success");

    let polite = a.spawn(&["sleep", "60"])?;
    polite.sigterm()?;
    polite.wait(TIMEOUT)?;
    Ok(())
}

#[test]
fn link_down_shows_as_one_outage_in_the_probe_loop() -> Result<()> {
    let lab = Lab::new("probe")?;
    let client = lab.add_host("client")?;
    let server = lab.add_host("server")?;
    let link = lab.connect(&client, &server)?;
    client.add_address(&link.a, "198.51.100.1/24")?;
    server.add_address(&link.b, "198.51.100.2/24")?;
    let _service = server.serve_tcp(addr("198.51.100.2:7003"))?;

    let plan = ProbePlan::tcp(addr("198.51.100.2:7003"))
        .interval(Duration::from_millis(10))
        .timeout(Duration::from_millis(50))
        .max_duration(Duration::from_secs(10));
    let icmp = client
        .start_probe(ProbePlan::icmp(ip("198.51.100.2")).max_duration(Duration::from_secs(10)))?;
    let tcp = client.start_probe(plan)?;
    thread::sleep(Duration::from_millis(300));
    // The client's own link goes down: that flushes its neighbour cache, so
    // recovery does not wait for an ARP retransmission (up to 1 s) queued
    // during the outage, and the measured outage tracks the link exactly.
    let down_at = Instant::now();
    client.link_down(&link.a)?;
    thread::sleep(Duration::from_millis(600));
    client.link_up(&link.a)?;
    let down_for = down_at.elapsed();
    thread::sleep(Duration::from_millis(500));

    for (kind, report) in [("tcp", tcp.finish()?), ("icmp", icmp.finish()?)] {
        ensure!(
            report.outages.len() == 1,
            "{kind}: expected exactly one outage: {report:?}"
        );
        let longest = report.longest_outage();
        ensure!(
            longest >= Duration::from_millis(450)
                && longest <= down_for + Duration::from_millis(400),
            "{kind}: outage {longest:?} does not match the {down_for:?} link-down: {report:?}"
        );
        ensure!(
            !report.ended_in_outage && report.successes > 20,
            "{kind}: {report:?}"
        );
    }
    Ok(())
}

#[test]
fn parallel_labs_with_same_host_names_do_not_collide() -> Result<()> {
    let workers: Vec<_> = (0..3)
        .map(|_| {
            thread::spawn(|| -> Result<Vec<String>> {
                let lab = Lab::new("par")?;
                let a = lab.add_host("a")?;
                let b = lab.add_host("b")?;
                let link = lab.connect(&a, &b)?;
                a.add_address(&link.a, "192.0.2.1/24")?;
                b.add_address(&link.b, "192.0.2.2/24")?;
                a.icmp_echo(ip("192.0.2.2"), TIMEOUT)?;
                Ok(lab.netns_names())
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        let names = worker
            .join()
            .map_err(|_| anyhow::anyhow!("lab worker panicked"))??;
        all.extend(names);
    }
    let unique: std::collections::HashSet<_> = all.iter().collect();
    ensure!(unique.len() == 6, "namespace names collided: {all:?}");
    let listed = list_namespaces()?;
    ensure!(
        all.iter().all(|ns| !listed.contains(ns)),
        "some parallel lab namespaces leaked"
    );
    ensure!(
        all.iter()
            .all(|ns| !Path::new(&format!("/run/netns/{ns}")).exists())
    );
    Ok(())
}

/// Fixtures can hand out a lab together with its hosts.
fn linked_pair(prefix: &str) -> Result<(Lab, lab::Host, lab::Host, lab::Link)> {
    let lab = Lab::new(prefix)?;
    let a = lab.add_host("a")?;
    let b = lab.add_host("b")?;
    let link = lab.connect(&a, &b)?;
    Ok((lab, a, b, link))
}

#[test]
fn host_handles_outliving_the_lab_fail_clearly() -> Result<()> {
    let (lab, a, _b, link) = linked_pair("late")?;
    a.add_address(&link.a, "192.0.2.1/24")?;
    drop(lab);
    let err = a.spawn(&["sleep", "1"]).unwrap_err();
    ensure!(
        format!("{err:#}").contains("already dropped"),
        "unclear error: {err:#}"
    );
    ensure!(
        a.exec(&["true"]).is_err(),
        "exec in a deleted namespace succeeded"
    );
    ensure!(
        a.run(|| ()).is_err(),
        "entering a deleted namespace succeeded"
    );
    Ok(())
}

/// The UDP building block of the reload tests: a server bound to an address
/// the host does not have yet (IP_FREEBIND) answers once it is added, from
/// that address; a client refuses replies from any other source, such as a
/// wildcard-bound server answering from the host's primary address.
#[test]
fn udp_echo_binds_before_its_address_and_only_its_replies_count() -> Result<()> {
    let (_lab, client, server, link) = linked_pair("udp")?;
    client.add_address(&link.a, "198.51.100.1/24")?;
    server.add_address(&link.b, "198.51.100.2/24")?;
    let vip = addr("198.51.100.10:7004");
    let echo = server.serve_udp_echo(vip)?;
    ensure!(
        client
            .udp_echo_once(vip, Duration::from_millis(300))
            .is_err(),
        "{vip} answered before the address existed"
    );
    server.add_address(&link.b, "198.51.100.10/24")?;
    client.udp_echo_once(vip, TIMEOUT)?;
    let plan = ProbePlan::udp(vip)
        .interval(Duration::from_millis(1))
        .max_duration(Duration::from_millis(300));
    let report = client.start_probe(plan)?.wait()?;
    ensure!(
        report.successes > 0 && report.successes == report.attempts,
        "UDP probe loop to {vip}: {report:?}"
    );
    let run = client.start_udp_probe(vip, Duration::from_millis(1), Duration::from_millis(300))?;
    run.wait_for_first_answer(TIMEOUT)?;
    let trace = run.finish()?;
    let window = trace.window(Duration::ZERO, Duration::from_millis(300));
    ensure!(
        window.lost == 0 && trace.foreign_replies == 0 && echo.answered() > 0,
        "pipelined UDP probe to {vip}: {window}, {} foreign",
        trace.foreign_replies
    );

    // A wildcard-bound server answers from the primary address 198.51.100.2.
    let wildcard = server.run(|| std::net::UdpSocket::bind("0.0.0.0:7005"))??;
    wildcard.set_read_timeout(Some(Duration::from_millis(20)))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_flag = std::sync::Arc::clone(&stop);
    let answering = thread::spawn(move || {
        let mut buf = [0u8; 64];
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5)
            && !stop_flag.load(std::sync::atomic::Ordering::Relaxed)
        {
            if let Ok((len, peer)) = wildcard.recv_from(&mut buf) {
                let _ = wildcard.send_to(&buf[..len], peer);
            }
        }
    });
    let to_vip = addr("198.51.100.10:7005");
    let run =
        client.start_udp_probe(to_vip, Duration::from_millis(1), Duration::from_millis(300))?;
    thread::sleep(Duration::from_millis(300));
    let trace = run.finish()?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = answering.join();
    ensure!(
        trace.successes() == 0 && trace.foreign_replies > 0,
        "replies from the primary address must be refused: {} accepted, {} refused",
        trace.successes(),
        trace.foreign_replies
    );
    Ok(())
}
