//! Deliberately malformable Ethernet frames for the datapath tests. The wire
//! codec only emits correct packets; these tests also need broken ones.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Clone, Copy)]
pub enum Checksum {
    WithPseudoHeader,
    MessageOnly,
    /// keepalived's `old_unicast_checksum`: the pseudo-header names the
    /// multicast group although the advert goes to a unicast peer.
    GroupPseudoHeader,
    Corrupt,
}

#[derive(Clone)]
pub struct FrameSpec {
    source: std::net::IpAddr,
    version: u8,
    advert_type: u8,
    vrid: u8,
    priority: u8,
    interval: u16,
    auth_type: u8,
    auth_pass: [u8; 8],
    ttl: u8,
    checksum: Checksum,
    /// (TPID, VLAN ID) of each tag, outermost first.
    tags: Vec<(u16, u16)>,
    declared_count: Option<u8>,
    truncate_ip_payload: usize,
    unicast_destination: Option<Ipv4Addr>,
}

impl FrameSpec {
    pub fn v3_ipv4(source: Ipv4Addr, vrid: u8, priority: u8, interval_cs: u16) -> Self {
        Self {
            source: source.into(),
            version: 3,
            advert_type: 1,
            vrid,
            priority,
            interval: interval_cs,
            auth_type: 0,
            auth_pass: [0; 8],
            ttl: 255,
            checksum: Checksum::WithPseudoHeader,
            tags: Vec::new(),
            declared_count: None,
            truncate_ip_payload: 0,
            unicast_destination: None,
        }
    }

    pub fn v3_ipv6(source: Ipv6Addr, vrid: u8, priority: u8, interval_cs: u16) -> Self {
        Self {
            source: source.into(),
            ..Self::v3_ipv4(Ipv4Addr::UNSPECIFIED, vrid, priority, interval_cs)
        }
    }

    pub fn v2_pass(source: Ipv4Addr, vrid: u8, priority: u8, interval_s: u8, pass: &[u8]) -> Self {
        let mut auth_pass = [0u8; 8];
        auth_pass[..pass.len()].copy_from_slice(pass);
        Self {
            version: 2,
            interval: interval_s.into(),
            auth_type: 1,
            auth_pass,
            checksum: Checksum::MessageOnly,
            ..Self::v3_ipv4(source, vrid, priority, 0)
        }
    }

    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }
    pub fn version(mut self, version: u8) -> Self {
        self.version = version;
        self
    }
    pub fn advert_type(mut self, advert_type: u8) -> Self {
        self.advert_type = advert_type;
        self
    }
    pub fn auth_type(mut self, auth_type: u8) -> Self {
        self.auth_type = auth_type;
        self
    }
    pub fn checksum(mut self, checksum: Checksum) -> Self {
        self.checksum = checksum;
        self
    }
    /// One 802.1Q tag.
    pub fn vlan(self, id: u16) -> Self {
        self.tag(0x8100, id)
    }
    /// Adds a tag inside those already there (0x88a8 outer and 0x8100
    /// inner is 802.1ad QinQ).
    pub fn tag(mut self, tpid: u16, id: u16) -> Self {
        self.tags.push((tpid, id));
        self
    }
    /// Claims more addresses than the message carries.
    pub fn declared_count(mut self, count: u8) -> Self {
        self.declared_count = Some(count);
        self
    }
    /// Sends to a unicast peer instead of 224.0.0.18.
    pub fn unicast_to(mut self, peer: Ipv4Addr) -> Self {
        self.unicast_destination = Some(peer);
        self
    }
    /// Cuts bytes off the end of the VRRP message (IP length adjusted).
    pub fn truncate_ip_payload(mut self, bytes: usize) -> Self {
        self.truncate_ip_payload = bytes;
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let ipv6 = self.source.is_ipv6();
        let virtual_address: Vec<u8> = if ipv6 {
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)
                .octets()
                .to_vec()
        } else {
            Ipv4Addr::new(203, 0, 113, 10).octets().to_vec()
        };
        let mut vrrp = vec![
            (self.version << 4) | self.advert_type,
            self.vrid,
            self.priority,
            self.declared_count.unwrap_or(1),
        ];
        if self.version == 2 {
            vrrp.extend([self.auth_type, self.interval as u8, 0, 0]);
        } else {
            vrrp.extend([(self.interval >> 8) as u8 & 0x0f, self.interval as u8, 0, 0]);
        }
        vrrp.extend(&virtual_address);
        if self.version == 2 {
            vrrp.extend(self.auth_pass);
        }
        vrrp.truncate(vrrp.len() - self.truncate_ip_payload);

        let group = vec![224, 0, 0, 18];
        let (source, destination): (Vec<u8>, Vec<u8>) = match self.source {
            std::net::IpAddr::V4(v4) => (
                v4.octets().into(),
                self.unicast_destination
                    .map_or_else(|| group.clone(), |peer| peer.octets().to_vec()),
            ),
            std::net::IpAddr::V6(v6) => (
                v6.octets().into(),
                Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)
                    .octets()
                    .into(),
            ),
        };
        let pseudo = pseudo_header(&source, &destination, vrrp.len(), ipv6);
        let checksum = match self.checksum {
            Checksum::MessageOnly => internet_checksum(&[&vrrp]),
            Checksum::WithPseudoHeader => internet_checksum(&[&pseudo, &vrrp]),
            Checksum::GroupPseudoHeader => {
                internet_checksum(&[&pseudo_header(&source, &group, vrrp.len(), ipv6), &vrrp])
            }
            Checksum::Corrupt => internet_checksum(&[&vrrp]) ^ 0x5a5a,
        };
        vrrp[6..8].copy_from_slice(&checksum.to_be_bytes());

        let mut frame = Vec::new();
        frame.extend(if ipv6 {
            [0x33, 0x33, 0, 0, 0, 0x12]
        } else {
            [0x01, 0x00, 0x5e, 0, 0, 0x12]
        });
        frame.extend([0x00, 0x00, 0x5e, 0x00, if ipv6 { 2 } else { 1 }, self.vrid]);
        for (tpid, id) in &self.tags {
            frame.extend(tpid.to_be_bytes());
            frame.extend(id.to_be_bytes());
        }
        if ipv6 {
            frame.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
            frame.extend((vrrp.len() as u16).to_be_bytes());
            frame.extend([112, self.ttl]);
            frame.extend(&source);
            frame.extend(&destination);
        } else {
            frame.extend([0x08, 0x00]);
            let mut header = vec![0x45, 0xc0];
            header.extend(((20 + vrrp.len()) as u16).to_be_bytes());
            header.extend([0, 0, 0, 0, self.ttl, 112, 0, 0]);
            header.extend(&source);
            header.extend(&destination);
            let header_checksum = internet_checksum(&[&header]);
            header[10..12].copy_from_slice(&header_checksum.to_be_bytes());
            frame.extend(header);
        }
        frame.extend(vrrp);
        frame
    }

    pub fn udp_ipv4() -> Vec<u8> {
        Self::udp_ipv4_from(Ipv4Addr::new(192, 0, 2, 1))
    }

    pub fn udp_ipv4_from(source: Ipv4Addr) -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        frame.extend([0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0]);
        frame.extend(source.octets());
        frame.extend([192, 0, 2, 2]);
        frame.extend([0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, b'p', b'i', b'n', b'g']);
        frame
    }

    pub fn udp_ipv6() -> Vec<u8> {
        Self::udp_ipv6_from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
    }

    pub fn udp_ipv6_from(source: Ipv6Addr) -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd];
        frame.extend([0x60, 0, 0, 0, 0, 12, 17, 64]);
        frame.extend(source.octets());
        frame.extend(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
        frame.extend([0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, b'p', b'i', b'n', b'g']);
        frame
    }

    pub fn arp() -> Vec<u8> {
        Self::arp_from(Ipv4Addr::new(192, 0, 2, 1))
    }

    /// A gratuitous ARP announcing `sender`.
    pub fn arp_from(sender: Ipv4Addr) -> Vec<u8> {
        let mut frame = vec![0xff; 6];
        frame.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        frame.extend([0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1]);
        frame.extend(sender.octets());
        frame.extend([0xff; 6]);
        frame.extend(sender.octets());
        frame
    }

    /// An IP packet to `destination` from a documentation address of its
    /// family, carrying `payload` as `protocol`, optionally with one 802.1Q
    /// tag. Layer-4 checksums are left zero: XDP never reads them.
    pub fn ip_to(destination: IpAddr, protocol: u8, payload: &[u8], vlan: Option<u16>) -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        if let Some(id) = vlan {
            frame.extend([0x81, 0x00]);
            frame.extend(id.to_be_bytes());
        }
        match destination {
            IpAddr::V4(destination) => {
                frame.extend([0x08, 0x00]);
                let mut header = vec![0x45, 0];
                header.extend(((20 + payload.len()) as u16).to_be_bytes());
                header.extend([0, 0, 0, 0, 64, protocol, 0, 0]);
                header.extend([198, 51, 100, 7]);
                header.extend(destination.octets());
                let header_checksum = internet_checksum(&[&header]);
                header[10..12].copy_from_slice(&header_checksum.to_be_bytes());
                frame.extend(header);
            }
            IpAddr::V6(destination) => {
                frame.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
                frame.extend((payload.len() as u16).to_be_bytes());
                frame.extend([protocol, 255]);
                frame.extend(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7).octets());
                frame.extend(destination.octets());
            }
        }
        frame.extend(payload);
        frame
    }

    /// An ARP request asking who has `target`.
    pub fn arp_request_for(target: Ipv4Addr) -> Vec<u8> {
        let mut frame = vec![0xff; 6];
        frame.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        frame.extend([0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1]);
        frame.extend([198, 51, 100, 7]);
        frame.extend([0; 6]);
        frame.extend(target.octets());
        frame
    }

    /// An IPv4 VRRP packet whose header ends right after the addresses:
    /// provably VRRP, but it names no VRID.
    pub fn vrrp_without_message() -> Vec<u8> {
        let mut frame = vec![0x01, 0x00, 0x5e, 0, 0, 0x12, 0x00, 0x00, 0x5e, 0x00, 1, 51];
        frame.extend([0x08, 0x00]);
        let mut header = vec![0x45, 0xc0, 0, 20, 0, 0, 0, 0, 255, 112, 0, 0];
        header.extend([192, 0, 2, 2, 224, 0, 0, 18]);
        let header_checksum = internet_checksum(&[&header]);
        header[10..12].copy_from_slice(&header_checksum.to_be_bytes());
        frame.extend(header);
        frame
    }

    /// IPv4 cut off before its protocol field: not provably VRRP, so it passes.
    pub fn truncated_ipv4() -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        frame.extend([0x45, 0, 0, 20]);
        frame
    }
}

fn pseudo_header(source: &[u8], destination: &[u8], length: usize, ipv6: bool) -> Vec<u8> {
    let mut pseudo = Vec::new();
    pseudo.extend(source);
    pseudo.extend(destination);
    if ipv6 {
        pseudo.extend((length as u32).to_be_bytes());
        pseudo.extend([0, 0, 0, 112]);
    } else {
        pseudo.extend([0, 112]);
        pseudo.extend((length as u16).to_be_bytes());
    }
    pseudo
}

fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for part in parts {
        for pair in part.chunks(2) {
            let high = u32::from(pair[0]) << 8;
            let low = pair.get(1).copied().map_or(0, u32::from);
            sum += high | low;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
