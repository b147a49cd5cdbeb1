//! The XDP datapath end to end, through `vrrp-agent monitor` on host b while
//! host a plays a VRRP router with the lab's raw advert sender: one `router`
//! event per change (not per advert), kernel timestamps, counters for invalid
//! adverts, observe-only (nothing dropped, other traffic unaffected), and the
//! program gone from the interface when the monitor exits — even on kill -9.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lab::{Advert, AdvertBurst, Host, Lab, Link, Monitor};
use serde_json::Value;

const A_V4: &str = "192.0.2.1";
const B_V4: &str = "192.0.2.2";
const VRID: u8 = 51;
const WAIT: Duration = Duration::from_secs(5);

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address literal")
}

/// Two hosts on one veth, and the monitor attached on b's end.
struct Fixture {
    lab: Lab,
    a: Host,
    b: Host,
    link: Link,
    monitor: Monitor,
}

impl Fixture {
    fn new(prefix: &str) -> Result<Self> {
        let lab = Lab::new(prefix)?;
        let a = lab.add_host("a")?;
        let b = lab.add_host("b")?;
        let link = lab.connect(&a, &b)?;
        a.add_address(&link.a, &format!("{A_V4}/24"))?;
        b.add_address(&link.b, &format!("{B_V4}/24"))?;
        let monitor = Monitor::start(&b, &link.b, &["--refresh-ms", "200"])?;
        Ok(Self {
            lab,
            a,
            b,
            link,
            monitor,
        })
    }

    fn send(&self, advert: &Advert, burst: AdvertBurst) -> Result<()> {
        self.a.send_adverts(&self.link.a, advert, burst)
    }
}

fn v3_advert(priority: u8) -> Advert {
    Advert::v3(
        VRID,
        priority,
        Duration::from_millis(100),
        vec![ip("198.51.100.51")],
    )
}

/// CLOCK_MONOTONIC in ns: the clock `bpf_ktime_get_ns` reads in the kernel.
fn monotonic_ns() -> Result<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    ensure!(
        rc == 0,
        "clock_gettime(CLOCK_MONOTONIC) failed: {}",
        std::io::Error::last_os_error()
    );
    Ok(u64::try_from(now.tv_sec)? * 1_000_000_000 + u64::try_from(now.tv_nsec)?)
}

fn changes(event: &Value) -> Vec<&str> {
    event["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn counter(stats: &Value, name: &str) -> Result<u64> {
    stats["counters"][name]
        .as_u64()
        .with_context(|| format!("stats line has no counter {name:?}: {stats}"))
}

#[test]
fn identical_adverts_raise_one_router_event_and_a_priority_change_one_more() -> Result<()> {
    let fx = Fixture::new("dpv4")?;
    let ifindex = fx.b.ifindex(&fx.link.b)?;
    let attached = fx.monitor.attached();
    ensure!(
        attached["interface"] == fx.link.b.as_str() && attached["ifindex"] == ifindex,
        "attached line names the wrong interface: {attached}"
    );
    ensure!(
        matches!(attached["xdp_mode"].as_str(), Some("driver" | "generic")),
        "xdp_mode should be driver or generic: {attached}"
    );

    let before = monotonic_ns()?;
    fx.send(
        &v3_advert(150),
        AdvertBurst::new(10, Duration::from_millis(100)),
    )?;
    let after = monotonic_ns()?;
    let (router, _) = fx
        .monitor
        .wait_for_router_stats(0, WAIT, VRID, "ipv4", |r| r["adverts"] == 10)?;
    ensure!(
        router["master"] == A_V4 && router["status"] == "alive",
        "stats entry: {router}"
    );
    // One more refresh, so a late duplicate event would have been printed.
    let mark = fx.monitor.mark();
    fx.monitor
        .wait_for(mark, WAIT, |line| line["event"] == "stats")?;

    let events = fx.monitor.router_events(VRID);
    ensure!(
        events.len() == 1,
        "10 identical adverts must raise exactly one router event, got {}:\n{events:#?}",
        events.len()
    );
    let first = &events[0];
    ensure!(changes(first) == ["first"], "changes: {first}");
    ensure!(
        first["family"] == "ipv4"
            && first["version"] == 3
            && first["master"] == A_V4
            && first["priority"] == 150
            && first["advert_interval_ms"] == 100
            && first["adverts"] == 1,
        "first router event has wrong fields: {first}"
    );
    let stamp = first["kernel_timestamp_ns"]
        .as_u64()
        .with_context(|| format!("no kernel_timestamp_ns: {first}"))?;
    ensure!(
        before < stamp && stamp < after,
        "kernel timestamp {stamp} not within the send window [{before}, {after}] (CLOCK_MONOTONIC)"
    );

    let mark = fx.monitor.mark();
    fx.send(
        &v3_advert(200),
        AdvertBurst::new(3, Duration::from_millis(100)),
    )?;
    fx.monitor
        .wait_for_router_stats(mark, WAIT, VRID, "ipv4", |r| {
            r["adverts"] == 13 && r["priority"] == 200
        })?;
    let mark = fx.monitor.mark();
    fx.monitor
        .wait_for(mark, WAIT, |line| line["event"] == "stats")?;
    let events = fx.monitor.router_events(VRID);
    ensure!(
        events.len() == 2,
        "a priority change must raise exactly one more router event, got:\n{events:#?}"
    );
    let second = &events[1];
    ensure!(
        changes(second).contains(&"priority")
            && !changes(second).contains(&"first")
            && second["priority"] == 200
            && second["master"] == A_V4,
        "second router event: {second}"
    );
    Ok(())
}

#[test]
fn ipv6_advert_from_link_local_is_reported_as_an_ipv6_router() -> Result<()> {
    let fx = Fixture::new("dpv6")?;
    let source = fx.a.ipv6_link_local(&fx.link.a)?;
    let advert = Advert::v3(
        VRID,
        120,
        Duration::from_millis(200),
        vec![ip("2001:db8::51")],
    );
    fx.send(&advert, AdvertBurst::new(3, Duration::from_millis(50)))?;
    let event = fx.monitor.wait_for(0, WAIT, |line| {
        line["event"] == "router" && line["vrid"] == VRID
    })?;
    ensure!(
        event["family"] == "ipv6"
            && event["version"] == 3
            && event["master"] == source.to_string().as_str()
            && event["priority"] == 120
            && event["advert_interval_ms"] == 200
            && changes(&event) == ["first"],
        "IPv6 router event from {source}: {event}"
    );
    let (router, _) = fx
        .monitor
        .wait_for_router_stats(0, WAIT, VRID, "ipv6", |r| r["adverts"] == 3)?;
    ensure!(
        router["checksum"] == "pseudo_header",
        "IPv6 VRRPv3 always uses the pseudo-header checksum: {router}"
    );
    ensure!(
        fx.monitor.router_events(VRID).len() == 1,
        "one IPv6 router expected"
    );
    Ok(())
}

#[test]
fn ttl_violations_are_counted_but_not_dropped_in_observe_only_mode() -> Result<()> {
    let fx = Fixture::new("dpttl")?;
    let baseline = fx
        .monitor
        .wait_for(0, WAIT, |line| line["event"] == "stats")?;
    let ttl_before = counter(&baseline, "ttl")?;
    let accepted_before = counter(&baseline, "accepted")?;

    // tcpdump sits behind XDP: seeing every packet proves none was dropped.
    let capture = fx.b.capture(&fx.link.b, "ip proto 112", 5)?;
    let burst = AdvertBurst {
        ttl: 64,
        ..AdvertBurst::new(5, Duration::from_millis(20))
    };
    let mark = fx.monitor.mark();
    fx.send(&v3_advert(150), burst)?;
    let stats = fx.monitor.wait_for(mark, WAIT, |line| {
        line["event"] == "stats"
            && line["counters"]["ttl"]
                .as_u64()
                .is_some_and(|ttl| ttl >= ttl_before + 5)
    })?;
    ensure!(
        counter(&stats, "ttl")? == ttl_before + 5,
        "5 TTL-64 adverts should count 5 under ttl: {stats}"
    );
    ensure!(
        counter(&stats, "accepted")? == accepted_before,
        "invalid adverts were accepted: {stats}"
    );
    capture.wait_for_packets(WAIT).with_context(
        || "the invalid adverts did not all reach host b's stack: observe-only must drop nothing",
    )?;
    let ttls = capture.fields(&["ip.ttl"], "vrrp")?;
    ensure!(
        ttls.len() == 5 && ttls.iter().all(|row| row == &["64"]),
        "captured {ttls:?}"
    );
    ensure!(
        fx.monitor.router_events(VRID).is_empty(),
        "an invalid advert raised a router event: {:?}",
        fx.monitor.router_events(VRID)
    );
    Ok(())
}

#[test]
fn valid_adverts_and_other_traffic_still_reach_the_monitored_host() -> Result<()> {
    let fx = Fixture::new("dptraffic")?;
    let capture = fx.b.capture(&fx.link.b, "ip proto 112", 4)?;
    fx.send(
        &v3_advert(150),
        AdvertBurst::new(4, Duration::from_millis(20)),
    )?;
    capture
        .wait_for_packets(WAIT)
        .context("valid adverts must be passed on in observe-only mode")?;
    fx.monitor
        .wait_for_router_stats(0, WAIT, VRID, "ipv4", |r| r["adverts"] == 4)?;

    let timeout = Duration::from_secs(2);
    fx.a.icmp_echo(ip(B_V4), timeout).context("ping a -> b")?;
    fx.b.icmp_echo(ip(A_V4), timeout).context("ping b -> a")?;
    let on_b = fx.b.serve_tcp(SocketAddr::new(ip(B_V4), 7101))?;
    let on_a = fx.a.serve_tcp(SocketAddr::new(ip(A_V4), 7102))?;
    ensure!(fx.a.tcp_request(on_b.address(), timeout)? == "b");
    ensure!(fx.b.tcp_request(on_a.address(), timeout)? == "a");
    ensure!(
        fx.monitor.process().is_running(),
        "monitor exited:\n{}",
        fx.lab.process_report()
    );
    Ok(())
}

/// Polls until no XDP program is attached to `iface` of `host`.
fn wait_for_xdp_gone(host: &Host, iface: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let Some(still) = host.xdp_attachment(iface)? else {
            return Ok(());
        };
        ensure!(
            Instant::now() < deadline,
            "an XDP program is still attached to {iface} after the monitor exited:\n{still}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_exits_zero_says_detached_and_leaves_no_xdp_program() -> Result<()> {
    let fx = Fixture::new("dpterm")?;
    ensure!(
        fx.b.xdp_attachment(&fx.link.b)?.is_some(),
        "no XDP program visible on {} while the monitor runs",
        fx.link.b
    );
    let process = fx.monitor.process();
    process.sigterm()?;
    let status = process.wait(WAIT)?;
    ensure!(
        status.success(),
        "monitor exited with {status} on SIGTERM:\n{}",
        process.report()
    );
    let last = fx.monitor.lines().last().cloned().unwrap_or_default();
    ensure!(
        last["event"] == "detached" && last["interface"] == fx.link.b.as_str(),
        "last line should be the detached event: {last}"
    );
    wait_for_xdp_gone(&fx.b, &fx.link.b)
}

#[test]
fn sigint_detaches_like_sigterm() -> Result<()> {
    let fx = Fixture::new("dpint")?;
    let process = fx.monitor.process();
    process.signal(libc::SIGINT)?;
    let status = process.wait(WAIT)?;
    ensure!(
        status.success(),
        "monitor exited with {status} on SIGINT:\n{}",
        process.report()
    );
    ensure!(
        fx.monitor.events("detached").len() == 1,
        "no detached line after SIGINT: {:?}",
        fx.monitor.lines()
    );
    wait_for_xdp_gone(&fx.b, &fx.link.b)
}

#[test]
fn kill9_still_removes_the_xdp_program() -> Result<()> {
    let fx = Fixture::new("dpkill")?;
    ensure!(
        fx.b.xdp_attachment(&fx.link.b)?.is_some(),
        "no XDP program visible on {} while the monitor runs",
        fx.link.b
    );
    let process = fx.monitor.process();
    process.kill9()?;
    let status = process.wait(WAIT)?;
    ensure!(
        status.signal() == Some(libc::SIGKILL),
        "monitor should have died of SIGKILL: {status}"
    );
    wait_for_xdp_gone(&fx.b, &fx.link.b)?;
    // The interface still works without the program.
    fx.a.icmp_echo(ip(B_V4), Duration::from_secs(2))?;
    Ok(())
}
