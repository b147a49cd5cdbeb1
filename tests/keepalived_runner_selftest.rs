//! The keepalived runner starts Debian's keepalived in a lab host, where it
//! behaves as a real VRRP router, and the lab stops it on drop.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use lab::{Keepalived, Lab};

const VIP: &str = "198.51.100.10";

fn vip() -> IpAddr {
    VIP.parse().expect("VIP literal")
}

fn config(router_id: &str, iface: &str, priority: u8) -> String {
    format!(
        "global_defs {{
    router_id {router_id}
    vrrp_version 3
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface {iface}
    virtual_router_id 51
    priority {priority}
    advert_int 0.1
    virtual_ipaddress {{
        {VIP}/24
    }}
}}
"
    )
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn keepalived_becomes_master_advertises_and_dies_with_the_lab() -> Result<()> {
    let lab = Lab::new("keepalived")?;
    let a = lab.add_host("a")?;
    let b = lab.add_host("b")?;
    let link = lab.connect(&a, &b)?;
    a.add_address(&link.a, "198.51.100.1/24")?;
    b.add_address(&link.b, "198.51.100.2/24")?;

    let capture = b.capture(&link.b, "ip proto 112", 10)?;
    let keepalived = Keepalived::start(&a, &config("lab_a", &link.a, 150))?;
    let took = a.wait_for_address(&link.a, vip(), Duration::from_secs(5))?;
    keepalived.log().wait_for(Duration::from_secs(2), |l| {
        l.contains("Entering MASTER STATE")
    })?;
    capture.wait_for_packets(Duration::from_secs(5))?;

    let rows = capture.fields(
        &[
            "ip.src",
            "ip.ttl",
            "vrrp.version",
            "vrrp.virt_rtr_id",
            "vrrp.prio",
            "vrrp.checksum.status",
            "vrrp.ip_addr",
        ],
        "vrrp",
    )?;
    ensure!(
        rows.len() == 10,
        "expected 10 decoded adverts, got {rows:?}"
    );
    for row in &rows {
        ensure!(
            row == &["198.51.100.1", "255", "3", "51", "150", "1", VIP],
            "unexpected advert from keepalived: {row:?}"
        );
    }
    ensure!(took < Duration::from_secs(5));

    let parent = keepalived.process().pid();
    let child = keepalived.vrrp_pid(Duration::from_secs(2))?;
    ensure!(pid_alive(parent) && pid_alive(child));
    let dir = keepalived.dir().to_path_buf();
    ensure!(Path::new(&dir.join("keepalived.conf")).exists());

    let dropped = Instant::now();
    drop(capture);
    drop(lab);
    ensure!(
        !pid_alive(parent),
        "keepalived parent {parent} survived the lab"
    );
    ensure!(
        !pid_alive(child),
        "keepalived VRRP child {child} survived the lab"
    );
    ensure!(dropped.elapsed() < Duration::from_secs(10));
    drop(keepalived);
    Ok(())
}

#[test]
fn two_keepalived_elect_one_master_and_fail_over_on_kill9() -> Result<()> {
    let lab = Lab::new("kafail")?;
    let sw = lab.add_switch("sw")?;
    let a = lab.add_host("a")?;
    let b = lab.add_host("b")?;
    let a_if = lab.attach(&a, &sw)?;
    let b_if = lab.attach(&b, &sw)?;
    a.add_address(&a_if, "198.51.100.1/24")?;
    b.add_address(&b_if, "198.51.100.2/24")?;

    let high = Keepalived::start(&a, &config("lab_a", &a_if, 150))?;
    a.wait_for_address(&a_if, vip(), Duration::from_secs(5))?;
    let low = Keepalived::start(&b, &config("lab_b", &b_if, 100))?;
    low.log().wait_for(Duration::from_secs(5), |l| {
        l.contains("Entering BACKUP STATE")
    })?;
    std::thread::sleep(Duration::from_millis(500));
    ensure!(
        !b.has_address(&b_if, vip())?,
        "backup b also holds the VIP:\n{}",
        low.log_text()
    );

    high.process().kill9()?;
    let takeover = b.wait_for_address(&b_if, vip(), Duration::from_secs(5))?;
    // Master_Down_Interval = 3 * 0.1 s + skew (~0.06 s) for priority 100.
    ensure!(
        takeover < Duration::from_secs(2),
        "takeover took {takeover:?}"
    );
    Ok(())
}
