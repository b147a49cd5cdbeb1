//! VRRPv3 IPv4 adverts whose checksum covers the VRRP message only (the
//! RFC 9568 reading, keepalived's later `v3_checksum_as_v2`), and a sender
//! for ready-made VRRP messages. Debian's keepalived 2.2.7 cannot send this
//! form (it has no `v3_checksum_as_v2`; its `old_unicast_checksum` only swaps
//! the pseudo-header destination for the multicast group), so interop tests
//! play that peer with these helpers.

use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::advert::{Advert, AdvertBurst, VRRP_GROUP_V4, VrrpVersion};
use crate::host::Host;
use crate::sock;

/// Offset of the checksum in a VRRP message (both versions).
const CHECKSUM_AT: usize = 6;

impl Advert {
    /// Encodes a VRRPv3 IPv4 advert like [`Advert::encode`], but with the
    /// checksum computed over the VRRP message alone (no pseudo-header).
    pub fn encode_message_only_checksum(
        &self,
        source: IpAddr,
        destination: IpAddr,
    ) -> Result<Vec<u8>> {
        if self.version != VrrpVersion::V3 || !source.is_ipv4() {
            bail!(
                "the message-only checksum form exists only for VRRPv3 over IPv4; got {:?} from {source}",
                self.version
            );
        }
        let mut message = self.encode(source, destination)?;
        let field = message
            .get_mut(CHECKSUM_AT..CHECKSUM_AT + 2)
            .context("encoded advert shorter than a VRRP header")?;
        field.copy_from_slice(&[0, 0]);
        let checksum = sock::internet_checksum(&[&message]);
        message[CHECKSUM_AT..CHECKSUM_AT + 2].copy_from_slice(&checksum.to_be_bytes());
        Ok(message)
    }
}

impl Host {
    /// Sends `burst.count` copies of the ready-made IPv4 VRRP `message` out
    /// of `iface` from this host's first IPv4 address on it, to
    /// `burst.destination` or 224.0.0.18. The bytes go out unchanged, so a
    /// test controls the checksum (see [`Advert::encode_message_only_checksum`]).
    pub fn send_vrrp_message_v4(
        &self,
        iface: &str,
        message: &[u8],
        burst: AdvertBurst,
    ) -> Result<()> {
        if burst.count == 0 || burst.count > 100_000 {
            bail!("advert burst count {} must be 1..=100000", burst.count);
        }
        if burst.interval.saturating_mul(burst.count) > Duration::from_secs(600) {
            bail!(
                "advert burst of {} x {:?} would run over 10 minutes",
                burst.count,
                burst.interval
            );
        }
        let source = IpAddr::V4(self.ipv4_address(iface)?);
        let destination = burst.destination.unwrap_or(IpAddr::V4(VRRP_GROUP_V4));
        if !destination.is_ipv4() {
            bail!("destination {destination} is not IPv4; this sender speaks IPv4 only");
        }
        let ifindex = self.ifindex(iface)?;
        let iface = iface.to_owned();
        let message = message.to_vec();
        self.run(move || -> Result<()> {
            let socket = super::advert::open_sender(&iface, ifindex, source, burst.ttl)?;
            let to = sock::SockAddr::new(destination, ifindex);
            for sent in 0..burst.count {
                if sent > 0 {
                    thread::sleep(burst.interval);
                }
                sock::send_to(&socket, &message, &to).with_context(|| {
                    format!(
                        "sending message {} of {} to {destination}",
                        sent + 1,
                        burst.count
                    )
                })?;
            }
            Ok(())
        })?
        .with_context(|| format!("sending VRRP messages from host {}", self.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_only_checksum_verifies_without_pseudo_header() {
        let vip: IpAddr = "203.0.113.10".parse().unwrap();
        let advert = Advert::v3(51, 200, Duration::from_millis(500), vec![vip]);
        let (src, dst): (IpAddr, IpAddr) = ("192.0.2.9".parse().unwrap(), VRRP_GROUP_V4.into());
        let message = advert.encode_message_only_checksum(src, dst).unwrap();
        assert_eq!(sock::internet_checksum(&[&message]), 0);
        let pseudo = advert.encode(src, dst).unwrap();
        assert_eq!(message[..6], pseudo[..6]);
        assert_ne!(message[6..8], pseudo[6..8], "the two forms must differ");
    }

    #[test]
    fn message_only_form_is_refused_for_v2_and_ipv6() {
        let v4: IpAddr = "203.0.113.10".parse().unwrap();
        let src: IpAddr = "192.0.2.9".parse().unwrap();
        let err = Advert::v2(1, 1, Duration::from_secs(1), vec![v4])
            .encode_message_only_checksum(src, VRRP_GROUP_V4.into())
            .unwrap_err();
        assert!(format!("{err}").contains("VRRPv3 over IPv4"));
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        let err = Advert::v3(1, 1, Duration::from_secs(1), vec![v6])
            .encode_message_only_checksum("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
            .unwrap_err();
        assert!(format!("{err}").contains("VRRPv3 over IPv4"));
    }
}
