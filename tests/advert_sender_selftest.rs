//! The lab's raw VRRP advert sender produces packets that an independent
//! decoder (tshark) accepts as valid VRRP: right fields, TTL 255, good checksum.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Result, ensure};
use lab::{Advert, AdvertBurst, Lab};

/// tshark's `*.checksum.status` value for a verified checksum.
const CHECKSUM_GOOD: &str = "1";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address literal")
}

/// Sends `burst` of `advert` from a to b over a veth and returns tshark's
/// view of what b received, one row of `fields` per packet.
fn send_and_decode(
    advert: &Advert,
    burst: AdvertBurst,
    fields: &[&str],
) -> Result<Vec<Vec<String>>> {
    let lab = Lab::new("advert")?;
    let a = lab.add_host("a")?;
    let b = lab.add_host("b")?;
    let link = lab.connect(&a, &b)?;
    a.add_address(&link.a, "192.0.2.1/24")?;
    b.add_address(&link.b, "192.0.2.2/24")?;

    let capture = b.capture(&link.b, "ip proto 112 or ip6 proto 112", burst.count)?;
    a.send_adverts(&link.a, advert, burst)?;
    capture.wait_for_packets(Duration::from_secs(5))?;
    let mut wanted = vec!["vrrp.checksum.status"];
    wanted.extend_from_slice(fields);
    let rows = capture.fields(&wanted, "vrrp")?;
    ensure!(
        rows.len() == burst.count as usize,
        "tshark decoded {} of {} adverts as VRRP:\n{}",
        rows.len(),
        burst.count,
        capture.decode_verbose()?
    );
    for row in &rows {
        ensure!(
            row.first().map(String::as_str) == Some(CHECKSUM_GOOD),
            "bad VRRP checksum: {row:?}"
        );
    }
    Ok(rows
        .into_iter()
        .map(|row| row.into_iter().skip(1).collect())
        .collect())
}

#[test]
fn five_v3_ipv4_adverts_decode_as_valid_vrrp_with_ttl_255() -> Result<()> {
    let advert = Advert::v3(
        42,
        200,
        Duration::from_millis(100),
        vec![ip("198.51.100.42")],
    );
    let rows = send_and_decode(
        &advert,
        AdvertBurst::new(5, Duration::from_millis(20)),
        &[
            "ip.src",
            "ip.dst",
            "ip.ttl",
            "vrrp.version",
            "vrrp.virt_rtr_id",
            "vrrp.prio",
            "vrrp.short_adver_int",
            "vrrp.ip_addr",
        ],
    )?;
    for row in rows {
        ensure!(
            row == [
                "192.0.2.1",
                "224.0.0.18",
                "255",
                "3",
                "42",
                "200",
                "10",
                "198.51.100.42"
            ],
            "unexpected advert fields {row:?}"
        );
    }
    Ok(())
}

#[test]
fn v3_ipv6_adverts_come_from_link_local_with_hop_limit_255() -> Result<()> {
    let advert = Advert::v3(7, 120, Duration::from_secs(1), vec![ip("2001:db8::7")]);
    let rows = send_and_decode(
        &advert,
        AdvertBurst::new(3, Duration::from_millis(20)),
        &[
            "ipv6.src",
            "ipv6.dst",
            "ipv6.hlim",
            "vrrp.version",
            "vrrp.virt_rtr_id",
            "vrrp.prio",
            "vrrp.ipv6_addr",
        ],
    )?;
    for row in rows {
        ensure!(
            row.first().is_some_and(|src| src.starts_with("fe80::")),
            "source is not link-local: {row:?}"
        );
        ensure!(
            row[1..] == ["ff02::12", "255", "3", "7", "120", "2001:db8::7"],
            "unexpected advert fields {row:?}"
        );
    }
    Ok(())
}

#[test]
fn v2_adverts_decode_with_seconds_interval() -> Result<()> {
    let advert = Advert::v2(9, 100, Duration::from_secs(1), vec![ip("203.0.113.9")]);
    let rows = send_and_decode(
        &advert,
        AdvertBurst::new(2, Duration::from_millis(20)),
        &[
            "ip.ttl",
            "vrrp.version",
            "vrrp.virt_rtr_id",
            "vrrp.prio",
            "vrrp.adver_int",
            "vrrp.ip_addr",
        ],
    )?;
    for row in rows {
        ensure!(
            row == ["255", "2", "9", "100", "1", "203.0.113.9"],
            "unexpected advert fields {row:?}"
        );
    }
    Ok(())
}

#[test]
fn burst_ttl_is_what_goes_on_the_wire() -> Result<()> {
    // Lets later tests send invalid (TTL != 255) adverts; proves the TTL
    // check above is not vacuous.
    let advert = Advert::v3(1, 100, Duration::from_secs(1), vec![ip("192.0.2.100")]);
    let burst = AdvertBurst {
        ttl: 64,
        ..AdvertBurst::new(2, Duration::from_millis(20))
    };
    let rows = send_and_decode(&advert, burst, &["ip.ttl"])?;
    ensure!(
        rows.iter().all(|row| row == &["64"]),
        "TTL not applied: {rows:?}"
    );
    Ok(())
}
