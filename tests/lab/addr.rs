//! The only addresses the lab hands to interfaces: the IPv4 documentation
//! ranges, 2001:db8::/32 and IPv6 link-local. Anything else is refused so a
//! test can never collide with a real network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result, bail};

/// An address with prefix length, e.g. `198.51.100.10/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The interface address.
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix_len: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Parses `addr/len` and checks the address is one the lab may use.
pub fn parse_lab_cidr(text: &str) -> Result<Cidr> {
    let (addr, len) = text.split_once('/').with_context(|| {
        format!("address {text:?} has no prefix length; write e.g. 192.0.2.1/24")
    })?;
    let addr: IpAddr = addr
        .parse()
        .with_context(|| format!("{addr:?} in {text:?} is not an IPv4 or IPv6 address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix_len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .with_context(|| format!("prefix length {len:?} in {text:?} must be 0..={max}"))?;
    check_lab_address(addr)?;
    Ok(Cidr { addr, prefix_len })
}

/// Fails unless `addr` is in 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
/// 2001:db8::/32 or fe80::/10.
pub fn check_lab_address(addr: IpAddr) -> Result<()> {
    let allowed = match addr {
        IpAddr::V4(v4) => is_documentation_v4(v4),
        IpAddr::V6(v6) => is_documentation_v6(v6) || is_link_local_v6(v6),
    };
    if !allowed {
        bail!(
            "{addr} is outside the lab's address ranges; use 192.0.2.0/24, 198.51.100.0/24, \
             203.0.113.0/24 or 2001:db8::/32"
        );
    }
    Ok(())
}

fn is_documentation_v4(addr: Ipv4Addr) -> bool {
    matches!(
        addr.octets(),
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]
    )
}

fn is_documentation_v6(addr: Ipv6Addr) -> bool {
    let segments = addr.segments();
    segments[0] == 0x2001 && segments[1] == 0x0db8
}

/// True for fe80::/10.
pub fn is_link_local_v6(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_ranges_are_accepted() {
        for ok in [
            "192.0.2.1/24",
            "198.51.100.10/24",
            "203.0.113.254/24",
            "2001:db8:1::2/64",
        ] {
            assert!(parse_lab_cidr(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            parse_lab_cidr("192.0.2.7/24").unwrap().to_string(),
            "192.0.2.7/24"
        );
    }

    #[test]
    fn other_addresses_are_refused_with_the_allowed_ranges() {
        for bad in [
            "10.0.0.1/24",
            "192.0.3.1/24",
            "2001:db9::1/64",
            "8.8.8.8/32",
        ] {
            let err = parse_lab_cidr(bad).unwrap_err();
            assert!(format!("{err}").contains("198.51.100.0/24"), "{bad}: {err}");
        }
    }

    #[test]
    fn malformed_cidrs_say_what_is_expected() {
        assert!(format!("{}", parse_lab_cidr("192.0.2.1").unwrap_err()).contains("prefix length"));
        assert!(format!("{:#}", parse_lab_cidr("192.0.2.1/33").unwrap_err()).contains("0..=32"));
        assert!(format!("{:#}", parse_lab_cidr("nope/24").unwrap_err()).contains("not an IPv4"));
    }
}
