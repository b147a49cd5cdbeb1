//! The VRRP advertisement: RFC 3768 (VRRPv2) and RFC 5798 (VRRPv3).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! v2: | Auth Type | Adver Int (s) |   v3: |Rsvd| Max Adver Int (cs) |  Checksum  |
//! |                 IPvX address(es), Count of them                |
//! v2 only: Authentication Data, 8 bytes (always present)
//! ```

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

#[cfg(test)]
use super::Error;
use super::checksum::Sum;
use super::{
    AddressFamily, AdvertInterval, ChecksumForm, EmitError, Endpoints, IP_PROTOCOL, Version,
};

/// Fixed part of every advert, before the addresses.
pub const HEADER_LEN: usize = 8;
/// VRRPv2's authentication data, after the addresses.
pub const V2_AUTH_DATA_LEN: usize = 8;
/// The only VRRP packet type.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Largest VRRPv3 interval: the field has 12 bits.
pub const V3_MAX_ADVERT_INTERVAL_CENTIS: u16 = 0x0fff;

mod field {
    pub const VERSION_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    pub const V2_AUTH_TYPE: usize = 4;
    pub const V2_ADVER_INT: usize = 5;
    pub const V3_ADVER_INT: std::ops::Range<usize> = 4..6;
    pub const CHECKSUM: std::ops::Range<usize> = 6..8;
    pub const ADDRESSES: usize = 8;
}

/// A zero-copy view of a VRRP advert. The address family comes from the IP
/// layer: it fixes the size of each address.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    family: AddressFamily,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it: accessors panic if it is shorter
    /// than `check_len` requires. For buffers sized by the caller (emitting);
    /// received bytes go through `new_checked` (XDP checks them in
    /// production, see the module docs of `wire`).
    pub const fn new_unchecked(buffer: T, family: AddressFamily) -> Self {
        Packet { buffer, family }
    }

    /// Wraps a buffer after checking it holds the whole message its header
    /// describes (it may be longer; [`Repr::parse`] insists on an exact fit).
    #[cfg(test)]
    pub fn new_checked(buffer: T, family: AddressFamily) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer, family);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer covers the fixed header and then everything the
    /// version and address count announce, so no accessor can go out of bounds.
    #[cfg(test)]
    pub fn check_len(&self) -> Result<(), Error> {
        let available = self.buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(Error::Truncated {
                what: "VRRP header",
                needed: HEADER_LEN,
                available,
            });
        }
        let needed = self.message_len();
        if available < needed {
            return Err(Error::Truncated {
                what: "VRRP message",
                needed,
                available,
            });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub const fn family(&self) -> AddressFamily {
        self.family
    }

    fn header_byte(&self, index: usize) -> u8 {
        self.buffer.as_ref()[index]
    }

    /// The 4-bit version field.
    pub fn version_field(&self) -> u8 {
        self.header_byte(field::VERSION_TYPE) >> 4
    }

    /// The 4-bit type field.
    #[cfg(test)]
    pub fn msg_type(&self) -> u8 {
        self.header_byte(field::VERSION_TYPE) & 0x0f
    }

    #[cfg(test)]
    pub fn vrid(&self) -> u8 {
        self.header_byte(field::VRID)
    }

    #[cfg(test)]
    pub fn priority(&self) -> u8 {
        self.header_byte(field::PRIORITY)
    }

    pub fn address_count(&self) -> u8 {
        self.header_byte(field::COUNT)
    }

    /// VRRPv2 authentication type (byte 4; part of the interval in v3).
    #[cfg(test)]
    pub fn v2_auth_type(&self) -> u8 {
        self.header_byte(field::V2_AUTH_TYPE)
    }

    /// VRRPv2 advertisement interval in seconds (byte 5).
    #[cfg(test)]
    pub fn v2_advert_interval_secs(&self) -> u8 {
        self.header_byte(field::V2_ADVER_INT)
    }

    /// VRRPv3 maximum advertisement interval in centiseconds (low 12 bits
    /// of bytes 4-5).
    #[cfg(test)]
    pub fn v3_max_advert_interval_centis(&self) -> u16 {
        self.v3_interval_word() & V3_MAX_ADVERT_INTERVAL_CENTIS
    }

    /// VRRPv3's 4 reserved bits: sent as zero, ignored on receipt.
    #[cfg(test)]
    pub fn v3_reserved(&self) -> u8 {
        (self.v3_interval_word() >> 12) as u8
    }

    #[cfg(test)]
    fn v3_interval_word(&self) -> u16 {
        u16::from_be_bytes([
            self.header_byte(field::V3_ADVER_INT.start),
            self.header_byte(field::V3_ADVER_INT.start + 1),
        ])
    }

    #[cfg(test)]
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([
            self.header_byte(field::CHECKSUM.start),
            self.header_byte(field::CHECKSUM.start + 1),
        ])
    }

    /// Bytes of the address list, as announced by the address count (empty
    /// if the buffer is shorter, which [`Packet::check_len`] rules out).
    #[cfg(test)]
    pub fn address_bytes(&self) -> &[u8] {
        let end = field::ADDRESSES + self.addresses_len();
        self.buffer
            .as_ref()
            .get(field::ADDRESSES..end)
            .unwrap_or(&[])
    }

    fn addresses_len(&self) -> usize {
        usize::from(self.address_count()) * self.family.address_len()
    }

    /// Address `index` of an IPv4 advert.
    #[cfg(test)]
    pub fn ipv4_address(&self, index: usize) -> Option<Ipv4Addr> {
        let start = index.checked_mul(4)?;
        let bytes: [u8; 4] = self
            .address_bytes()
            .get(start..start + 4)?
            .try_into()
            .ok()?;
        (self.family == AddressFamily::Ipv4).then(|| Ipv4Addr::from(bytes))
    }

    /// Address `index` of an IPv6 advert.
    #[cfg(test)]
    pub fn ipv6_address(&self, index: usize) -> Option<Ipv6Addr> {
        let start = index.checked_mul(16)?;
        let bytes: [u8; 16] = self
            .address_bytes()
            .get(start..start + 16)?
            .try_into()
            .ok()?;
        (self.family == AddressFamily::Ipv6).then(|| Ipv6Addr::from(bytes))
    }

    /// VRRPv2 authentication data (the 8 bytes after the addresses); `None`
    /// for other versions or a buffer too short.
    #[cfg(test)]
    pub fn v2_auth_data(&self) -> Option<[u8; V2_AUTH_DATA_LEN]> {
        if self.version_field() != Version::V2.wire_value() {
            return None;
        }
        let start = field::ADDRESSES + self.addresses_len();
        self.buffer
            .as_ref()
            .get(start..start + V2_AUTH_DATA_LEN)?
            .try_into()
            .ok()
    }

    /// Length the header announces: fixed part, addresses, and VRRPv2's
    /// authentication data when the version field says 2.
    pub fn message_len(&self) -> usize {
        let auth = if self.version_field() == Version::V2.wire_value() {
            V2_AUTH_DATA_LEN
        } else {
            0
        };
        HEADER_LEN + self.addresses_len() + auth
    }

    /// The announced message (the whole buffer if it is shorter).
    fn message(&self) -> &[u8] {
        let buffer = self.buffer.as_ref();
        buffer.get(..self.message_len()).unwrap_or(buffer)
    }

    /// Checks the checksum in the forms that apply to `version` over the
    /// endpoints' family, and says which one matched.
    #[cfg(test)]
    pub fn verify_checksum(
        &self,
        version: Version,
        endpoints: &Endpoints,
    ) -> Result<ChecksumForm, Error> {
        let message = self.message();
        let found = self.checksum();
        let forms: &[ChecksumForm] = match (version, endpoints) {
            (Version::V2, _) => &[ChecksumForm::MessageOnly],
            // keepalived's default first: it is what most peers send.
            (Version::V3, Endpoints::V4 { .. }) => {
                &[ChecksumForm::WithPseudoHeader, ChecksumForm::MessageOnly]
            }
            (Version::V3, Endpoints::V6 { .. }) => &[ChecksumForm::WithPseudoHeader],
        };
        let mut expected = [0u16; 2];
        for (slot, form) in expected.iter_mut().zip(forms) {
            let sum = message_checksum(message, endpoints, *form);
            if sum == found {
                return Ok(*form);
            }
            *slot = sum;
        }
        Err(Error::Checksum {
            found,
            expected: expected[0],
            alternative: (forms.len() > 1).then_some(expected[1]),
        })
    }
}

/// The checksum `message` should carry in `form`, computed as if its
/// checksum field were zero.
fn message_checksum(message: &[u8], endpoints: &Endpoints, form: ChecksumForm) -> u16 {
    let start = match form {
        ChecksumForm::MessageOnly => Sum::new(),
        ChecksumForm::WithPseudoHeader => pseudo_header(endpoints, message.len()),
    };
    let before = message.get(..field::CHECKSUM.start).unwrap_or(message);
    let after = message.get(field::CHECKSUM.end..).unwrap_or(&[]);
    start.add_bytes(before).add_bytes(after).checksum()
}

fn pseudo_header(endpoints: &Endpoints, len: usize) -> Sum {
    match *endpoints {
        // A VRRP message is far below 64 KiB; saturate rather than wrap
        // should a caller ever pass more.
        Endpoints::V4 { src, dst } => Sum::ipv4_pseudo_header(
            src,
            dst,
            IP_PROTOCOL,
            u16::try_from(len).unwrap_or(u16::MAX),
        ),
        Endpoints::V6 { src, dst } => Sum::ipv6_pseudo_header(
            src,
            dst,
            IP_PROTOCOL,
            u32::try_from(len).unwrap_or(u32::MAX),
        ),
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn header_mut(&mut self, index: usize) -> &mut u8 {
        &mut self.buffer.as_mut()[index]
    }

    pub fn set_version_and_type(&mut self, version: u8, msg_type: u8) {
        *self.header_mut(field::VERSION_TYPE) = (version << 4) | (msg_type & 0x0f);
    }

    pub fn set_vrid(&mut self, vrid: u8) {
        *self.header_mut(field::VRID) = vrid;
    }

    pub fn set_priority(&mut self, priority: u8) {
        *self.header_mut(field::PRIORITY) = priority;
    }

    pub fn set_address_count(&mut self, count: u8) {
        *self.header_mut(field::COUNT) = count;
    }

    pub fn set_v2_auth_type(&mut self, auth_type: u8) {
        *self.header_mut(field::V2_AUTH_TYPE) = auth_type;
    }

    pub fn set_v2_advert_interval_secs(&mut self, secs: u8) {
        *self.header_mut(field::V2_ADVER_INT) = secs;
    }

    /// Sets the 12-bit interval and clears the reserved bits.
    pub fn set_v3_max_advert_interval_centis(&mut self, centis: u16) {
        let [hi, lo] = (centis & V3_MAX_ADVERT_INTERVAL_CENTIS).to_be_bytes();
        *self.header_mut(field::V3_ADVER_INT.start) = hi;
        *self.header_mut(field::V3_ADVER_INT.start + 1) = lo;
    }

    pub fn set_checksum(&mut self, checksum: u16) {
        let [hi, lo] = checksum.to_be_bytes();
        *self.header_mut(field::CHECKSUM.start) = hi;
        *self.header_mut(field::CHECKSUM.start + 1) = lo;
    }

    /// The address list as announced by the address count.
    pub fn address_bytes_mut(&mut self) -> &mut [u8] {
        let end = field::ADDRESSES + self.addresses_len();
        self.buffer
            .as_mut()
            .get_mut(field::ADDRESSES..end)
            .unwrap_or(&mut [])
    }

    /// Writes VRRPv2 authentication data after the addresses; does nothing
    /// if the buffer has no room for it.
    pub fn set_v2_auth_data(&mut self, data: &[u8; V2_AUTH_DATA_LEN]) {
        let start = field::ADDRESSES + self.addresses_len();
        if let Some(slot) = self
            .buffer
            .as_mut()
            .get_mut(start..start + V2_AUTH_DATA_LEN)
        {
            slot.copy_from_slice(data);
        }
    }

    /// Computes and stores the checksum in `form` (see the module docs on
    /// which form applies when).
    pub fn fill_checksum(&mut self, endpoints: &Endpoints, form: ChecksumForm) {
        let sum = message_checksum(self.message(), endpoints, form);
        self.set_checksum(sum);
    }
}

/// A VRRPv2 simple-text password as it is on the wire: 8 bytes, NUL-padded.
/// `Debug` does not print it, to keep it out of logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SimplePassword([u8; V2_AUTH_DATA_LEN]);

impl SimplePassword {
    /// The password keepalived sends for `auth_pass`: longer ones are cut to
    /// 8 bytes (keepalived warns "Truncating auth_pass to 8 characters"),
    /// shorter ones padded with NULs.
    pub fn new(password: &[u8]) -> Self {
        let mut bytes = [0u8; V2_AUTH_DATA_LEN];
        for (slot, byte) in bytes.iter_mut().zip(password) {
            *slot = *byte;
        }
        SimplePassword(bytes)
    }

    #[cfg(test)]
    pub const fn from_wire(bytes: [u8; V2_AUTH_DATA_LEN]) -> Self {
        SimplePassword(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; V2_AUTH_DATA_LEN] {
        &self.0
    }
}

impl fmt::Debug for SimplePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SimplePassword(<redacted>)")
    }
}

/// VRRPv2 authentication (RFC 2338; RFC 3768 dropped it, keepalived kept
/// type 1). VRRPv3 has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0. The authentication data is sent as zeros and ignored.
    None,
    /// Type 1 (keepalived `auth_type PASS`).
    SimplePassword(SimplePassword),
}

impl Auth {
    pub const TYPE_NONE: u8 = 0;
    pub const TYPE_SIMPLE_TEXT: u8 = 1;
    /// IP Authentication Header: recognised, never supported.
    #[cfg(test)]
    pub const TYPE_IP_AH: u8 = 2;

    /// `auth_type PASS` with `auth_pass password`.
    pub fn simple_password(password: &str) -> Self {
        Auth::SimplePassword(SimplePassword::new(password.as_bytes()))
    }

    pub const fn wire_type(&self) -> u8 {
        match self {
            Auth::None => Self::TYPE_NONE,
            Auth::SimplePassword(_) => Self::TYPE_SIMPLE_TEXT,
        }
    }

    fn wire_data(&self) -> [u8; V2_AUTH_DATA_LEN] {
        match self {
            Auth::None => [0; V2_AUTH_DATA_LEN],
            Auth::SimplePassword(password) => *password.as_bytes(),
        }
    }

    #[cfg(test)]
    fn from_wire(auth_type: u8, data: [u8; V2_AUTH_DATA_LEN]) -> Result<Self, Error> {
        match auth_type {
            Self::TYPE_NONE => Ok(Auth::None),
            Self::TYPE_SIMPLE_TEXT => Ok(Auth::SimplePassword(SimplePassword::from_wire(data))),
            Self::TYPE_IP_AH => Err(Error::AuthTypeUnsupported),
            found => Err(Error::AuthTypeUnknown { found }),
        }
    }
}

/// The virtual addresses an advert announces; the variant is the family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VirtualAddresses {
    V4(Vec<Ipv4Addr>),
    V6(Vec<Ipv6Addr>),
}

impl VirtualAddresses {
    pub const fn family(&self) -> AddressFamily {
        match self {
            VirtualAddresses::V4(_) => AddressFamily::Ipv4,
            VirtualAddresses::V6(_) => AddressFamily::Ipv6,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            VirtualAddresses::V4(list) => list.len(),
            VirtualAddresses::V6(list) => list.len(),
        }
    }

    fn write(&self, out: &mut [u8]) {
        match self {
            VirtualAddresses::V4(list) => {
                for (slot, addr) in out.chunks_exact_mut(4).zip(list) {
                    slot.copy_from_slice(&addr.octets());
                }
            }
            VirtualAddresses::V6(list) => {
                for (slot, addr) in out.chunks_exact_mut(16).zip(list) {
                    slot.copy_from_slice(&addr.octets());
                }
            }
        }
    }
}

/// A validated advert, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    pub advert_interval: AdvertInterval,
    /// Always [`Auth::None`] for VRRPv3.
    pub auth: Auth,
    pub addresses: VirtualAddresses,
}

/// A parsed advert and the checksum form it was sent with.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Parsed {
    pub repr: Repr,
    pub checksum_form: ChecksumForm,
}

impl Repr {
    /// Validates an advert the IP layer delivered between `endpoints`:
    /// version, type, exact length, checksum (either form for VRRPv3 over
    /// IPv4), authentication type, non-zero interval.
    #[cfg(test)]
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        endpoints: &Endpoints,
    ) -> Result<Parsed, Error> {
        packet.check_len()?;
        let family = packet.family();
        if endpoints.family() != family {
            return Err(Error::FamilyMismatch {
                found: endpoints.family(),
                expected: family,
            });
        }
        let version = match packet.version_field() {
            2 => Version::V2,
            3 => Version::V3,
            found => return Err(Error::Version { found }),
        };
        if version == Version::V2 && family == AddressFamily::Ipv6 {
            return Err(Error::VersionFamily { version, family });
        }
        if packet.msg_type() != TYPE_ADVERTISEMENT {
            return Err(Error::Type {
                found: packet.msg_type(),
            });
        }
        let found = packet.buffer.as_ref().len();
        let expected = packet.message_len();
        if found != expected {
            return Err(Error::Length {
                address_count: packet.address_count(),
                family,
                expected,
                found,
            });
        }
        let checksum_form = packet.verify_checksum(version, endpoints)?;
        let (auth, interval_field) = match version {
            Version::V2 => {
                let data = packet.v2_auth_data().unwrap_or_default();
                let auth = Auth::from_wire(packet.v2_auth_type(), data)?;
                (auth, u16::from(packet.v2_advert_interval_secs()))
            }
            Version::V3 => (Auth::None, packet.v3_max_advert_interval_centis()),
        };
        // The fields are 8 bits of seconds (v2) and 12 bits of centiseconds
        // (v3): zero is the only value that does not make an interval.
        let advert_interval =
            AdvertInterval::from_wire_field(version, interval_field).map_err(|_| {
                Error::AdvertIntervalZero {
                    unit: match version {
                        Version::V2 => "second",
                        Version::V3 => "centisecond",
                    },
                }
            })?;
        let count = usize::from(packet.address_count());
        let addresses = match family {
            AddressFamily::Ipv4 => {
                VirtualAddresses::V4((0..count).filter_map(|i| packet.ipv4_address(i)).collect())
            }
            AddressFamily::Ipv6 => {
                VirtualAddresses::V6((0..count).filter_map(|i| packet.ipv6_address(i)).collect())
            }
        };
        Ok(Parsed {
            repr: Repr {
                version,
                vrid: packet.vrid(),
                priority: packet.priority(),
                advert_interval,
                auth,
                addresses,
            },
            checksum_form,
        })
    }

    pub fn family(&self) -> AddressFamily {
        self.addresses.family()
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let auth = match self.version {
            Version::V2 => V2_AUTH_DATA_LEN,
            Version::V3 => 0,
        };
        HEADER_LEN + self.addresses.len() * self.family().address_len() + auth
    }

    /// Checks everything [`Repr::emit`] needs, without writing.
    pub fn check_emittable(&self, endpoints: &Endpoints) -> Result<(), EmitError> {
        let family = self.family();
        if endpoints.family() != family {
            return Err(EmitError::FamilyMismatch {
                addresses: family,
                endpoints: endpoints.family(),
            });
        }
        if self.version == Version::V2 && family == AddressFamily::Ipv6 {
            return Err(EmitError::VersionFamily {
                version: self.version,
                family,
            });
        }
        if self.addresses.len() > usize::from(u8::MAX) {
            return Err(EmitError::TooManyAddresses {
                count: self.addresses.len(),
            });
        }
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(EmitError::AuthInV3);
        }
        interval_field(self.advert_interval, self.version)?;
        Ok(())
    }

    /// Writes the advert with its checksum in `form`. `form` only matters
    /// for VRRPv3 over IPv4: VRRPv2 is always message-only and VRRPv3 over
    /// IPv6 always includes the pseudo-header, whatever is passed.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        endpoints: &Endpoints,
        form: ChecksumForm,
    ) -> Result<(), EmitError> {
        self.check_emittable(endpoints)?;
        if packet.family() != self.family() {
            return Err(EmitError::FamilyMismatch {
                addresses: self.family(),
                endpoints: packet.family(),
            });
        }
        let needed = self.buffer_len();
        let available = packet.buffer.as_ref().len();
        if available < needed {
            return Err(EmitError::BufferTooSmall { needed, available });
        }
        let interval = interval_field(self.advert_interval, self.version)?;
        let count =
            u8::try_from(self.addresses.len()).map_err(|_| EmitError::TooManyAddresses {
                count: self.addresses.len(),
            })?;
        packet.set_version_and_type(self.version.wire_value(), TYPE_ADVERTISEMENT);
        packet.set_vrid(self.vrid);
        packet.set_priority(self.priority);
        packet.set_address_count(count);
        match self.version {
            Version::V2 => {
                packet.set_v2_auth_type(self.auth.wire_type());
                packet.set_v2_advert_interval_secs(u8::try_from(interval).unwrap_or(u8::MAX));
            }
            Version::V3 => packet.set_v3_max_advert_interval_centis(interval),
        }
        packet.set_checksum(0);
        self.addresses.write(packet.address_bytes_mut());
        if self.version == Version::V2 {
            packet.set_v2_auth_data(&self.auth.wire_data());
        }
        packet.fill_checksum(endpoints, effective_form(self.version, self.family(), form));
        Ok(())
    }

    /// [`Repr::emit`] into a new buffer of exactly [`Repr::buffer_len`] bytes.
    pub fn to_bytes(
        &self,
        endpoints: &Endpoints,
        form: ChecksumForm,
    ) -> Result<Vec<u8>, EmitError> {
        let mut packet = Packet::new_unchecked(vec![0; self.buffer_len()], self.family());
        self.emit(&mut packet, endpoints, form)?;
        Ok(packet.into_inner())
    }

    /// RFC 3768 §7.1: a VRRPv2 advert must carry the configured
    /// authentication. VRRPv3 has none, so any v3 advert passes.
    #[cfg(test)]
    pub fn verify_auth(&self, configured: &Auth) -> Result<(), Error> {
        if self.version == Version::V3 {
            return Ok(());
        }
        match (&self.auth, configured) {
            (found, expected) if found.wire_type() != expected.wire_type() => {
                Err(Error::AuthTypeMismatch {
                    found: found.wire_type(),
                    expected: expected.wire_type(),
                })
            }
            (Auth::SimplePassword(found), Auth::SimplePassword(expected)) if found != expected => {
                Err(Error::AuthDataMismatch)
            }
            _ => Ok(()),
        }
    }

    /// RFC 3768 §7.1: a VRRPv2 advert's interval must equal the configured
    /// one. VRRPv3 backups adopt the master's interval instead (RFC 5798
    /// §6.4.2), so any v3 advert passes.
    #[cfg(test)]
    pub fn verify_advert_interval(&self, configured: AdvertInterval) -> Result<(), Error> {
        if self.version == Version::V3 || self.advert_interval == configured {
            return Ok(());
        }
        Err(Error::AdvertIntervalMismatch {
            found: self.advert_interval,
            expected: configured,
        })
    }
}

/// `interval`'s field in `version`, or why it cannot be sent in it.
fn interval_field(interval: AdvertInterval, version: Version) -> Result<u16, EmitError> {
    interval
        .wire_field(version)
        .map_err(|_| EmitError::AdvertInterval {
            centis: interval.centiseconds(),
            version,
            allowed: match version {
                Version::V2 => "whole seconds from 1 to 255",
                Version::V3 => "1 to 4095 centiseconds (0.01 s to 40.95 s)",
            },
        })
}

/// The checksum form the protocol actually allows for `version` over `family`.
pub const fn effective_form(
    version: Version,
    family: AddressFamily,
    requested: ChecksumForm,
) -> ChecksumForm {
    match (version, family) {
        (Version::V2, _) => ChecksumForm::MessageOnly,
        (Version::V3, AddressFamily::Ipv6) => ChecksumForm::WithPseudoHeader,
        (Version::V3, AddressFamily::Ipv4) => requested,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn secs(seconds: u32) -> AdvertInterval {
        AdvertInterval::checked(Version::V2, seconds * 100)
    }

    fn centis(centiseconds: u32) -> AdvertInterval {
        AdvertInterval::checked(Version::V3, centiseconds)
    }

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    fn endpoints() -> Endpoints {
        Endpoints::ipv4_multicast(SRC)
    }

    fn v2() -> Repr {
        Repr {
            version: Version::V2,
            vrid: 7,
            priority: 100,
            advert_interval: secs(3),
            auth: Auth::simple_password("1234"),
            addresses: VirtualAddresses::V4(vec![Ipv4Addr::new(192, 0, 2, 10)]),
        }
    }

    fn v3() -> Repr {
        Repr {
            version: Version::V3,
            auth: Auth::None,
            advert_interval: centis(25),
            ..v2()
        }
    }

    fn parse(bytes: &[u8]) -> Result<Parsed, Error> {
        Repr::parse(
            &Packet::new_checked(bytes, AddressFamily::Ipv4)?,
            &endpoints(),
        )
    }

    /// Emits `repr`, lets `edit` corrupt the packet, then re-checksums it so
    /// only the intended fault remains.
    fn emitted_then(repr: &Repr, edit: impl FnOnce(&mut Packet<&mut Vec<u8>>)) -> Vec<u8> {
        let mut bytes = repr
            .to_bytes(&endpoints(), ChecksumForm::MessageOnly)
            .expect("valid repr");
        let mut packet = Packet::new_unchecked(&mut bytes, AddressFamily::Ipv4);
        edit(&mut packet);
        packet.fill_checksum(&endpoints(), ChecksumForm::MessageOnly);
        bytes
    }

    #[test]
    fn v2_layout_matches_rfc3768() {
        let bytes = v2()
            .to_bytes(&endpoints(), ChecksumForm::MessageOnly)
            .expect("valid");
        assert_eq!(bytes.len(), 8 + 4 + 8);
        assert_eq!(bytes[..6], [0x21, 7, 100, 1, 1, 3]);
        assert_eq!(bytes[8..12], [192, 0, 2, 10]);
        assert_eq!(&bytes[12..], b"1234\0\0\0\0");
        assert_eq!(super::super::checksum::checksum(&bytes), 0);
    }

    #[test]
    fn v3_interval_is_12_bits_of_centiseconds_and_reserved_bits_are_ignored() {
        let bytes = emitted_then(&v3(), |p| {
            p.set_v3_max_advert_interval_centis(4095);
            let word = u16::from_be_bytes([p.buffer[4], p.buffer[5]]) | 0xf000;
            p.buffer[4..6].copy_from_slice(&word.to_be_bytes());
        });
        let packet = Packet::new_checked(&bytes[..], AddressFamily::Ipv4).expect("long enough");
        assert_eq!(packet.v3_reserved(), 0x0f);
        let parsed = parse(&bytes).expect("reserved bits are ignored on receipt");
        assert_eq!(parsed.repr.advert_interval, centis(4095));
        assert_eq!(
            parsed.repr.advert_interval.as_duration(),
            Duration::from_millis(40_950)
        );
    }

    #[test]
    fn header_faults_are_named() {
        let bad_version = emitted_then(&v3(), |p| p.set_version_and_type(4, 1));
        assert_eq!(parse(&bad_version), Err(Error::Version { found: 4 }));
        let bad_type = emitted_then(&v3(), |p| p.set_version_and_type(3, 2));
        assert_eq!(parse(&bad_type), Err(Error::Type { found: 2 }));
        let zero_interval = emitted_then(&v3(), |p| p.set_v3_max_advert_interval_centis(0));
        assert_eq!(
            parse(&zero_interval),
            Err(Error::AdvertIntervalZero {
                unit: "centisecond"
            })
        );
        let zero_v2_interval = emitted_then(&v2(), |p| p.set_v2_advert_interval_secs(0));
        assert_eq!(
            parse(&zero_v2_interval).map_err(|e| e.reason()),
            Err(super::super::RejectReason::AdvertInterval)
        );
    }

    #[test]
    fn lengths_must_match_the_address_count_exactly() {
        let mut longer = v3()
            .to_bytes(&endpoints(), ChecksumForm::MessageOnly)
            .expect("valid");
        longer.push(0);
        assert_eq!(
            parse(&longer),
            Err(Error::Length {
                address_count: 1,
                family: AddressFamily::Ipv4,
                expected: 12,
                found: 13
            })
        );
        let more_addresses = emitted_then(&v3(), |p| p.set_address_count(2));
        assert_eq!(
            parse(&more_addresses),
            Err(Error::Truncated {
                what: "VRRP message",
                needed: 16,
                available: 12
            })
        );
        assert_eq!(
            parse(&[0x31, 1, 2]),
            Err(Error::Truncated {
                what: "VRRP header",
                needed: 8,
                available: 3
            })
        );
    }

    #[test]
    fn v2_auth_types() {
        let ah = emitted_then(&v2(), |p| p.set_v2_auth_type(2));
        assert_eq!(parse(&ah), Err(Error::AuthTypeUnsupported));
        let unknown = emitted_then(&v2(), |p| p.set_v2_auth_type(9));
        assert_eq!(parse(&unknown), Err(Error::AuthTypeUnknown { found: 9 }));
        let none = emitted_then(&v2(), |p| p.set_v2_auth_type(0));
        assert_eq!(parse(&none).map(|p| p.repr.auth), Ok(Auth::None));
    }

    #[test]
    fn v2_over_ipv6_is_a_version_error() {
        let v6 = Endpoints::ipv6_multicast(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
        let mut bytes = [0u8; 8 + 16 + 8];
        bytes[0] = 0x21;
        bytes[3] = 1;
        let packet = Packet::new_checked(&bytes[..], AddressFamily::Ipv6).expect("long enough");
        assert_eq!(
            Repr::parse(&packet, &v6),
            Err(Error::VersionFamily {
                version: Version::V2,
                family: AddressFamily::Ipv6
            })
        );
    }

    #[test]
    fn checksum_forms() {
        let repr = v3();
        for form in [ChecksumForm::MessageOnly, ChecksumForm::WithPseudoHeader] {
            let bytes = repr.to_bytes(&endpoints(), form).expect("valid");
            assert_eq!(parse(&bytes).map(|p| p.checksum_form), Ok(form));
        }
        // v2 ignores the requested form: it only has one.
        let bytes = v2()
            .to_bytes(&endpoints(), ChecksumForm::WithPseudoHeader)
            .expect("valid");
        assert_eq!(
            parse(&bytes).map(|p| p.checksum_form),
            Ok(ChecksumForm::MessageOnly)
        );
        // The pseudo-header binds the checksum to the IP addresses.
        let pseudo = repr
            .to_bytes(&endpoints(), ChecksumForm::WithPseudoHeader)
            .expect("valid");
        let elsewhere = Endpoints::ipv4_multicast(Ipv4Addr::new(192, 0, 2, 99));
        let packet = Packet::new_checked(&pseudo[..], AddressFamily::Ipv4).expect("long enough");
        assert!(matches!(
            Repr::parse(&packet, &elsewhere),
            Err(Error::Checksum {
                alternative: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn emit_rejects_what_the_wire_cannot_carry() {
        let ep = endpoints();
        let half_second_v2 = Repr {
            advert_interval: centis(50),
            ..v2()
        };
        assert!(matches!(
            half_second_v2.to_bytes(&ep, ChecksumForm::MessageOnly),
            Err(EmitError::AdvertInterval {
                centis: 50,
                version: Version::V2,
                ..
            })
        ));
        // 50 s fits VRRPv2's 8 bits of seconds, not VRRPv3's 12 bits of cs.
        let too_slow_v3 = Repr {
            advert_interval: secs(50),
            ..v3()
        };
        assert!(matches!(
            too_slow_v3.to_bytes(&ep, ChecksumForm::MessageOnly),
            Err(EmitError::AdvertInterval { .. })
        ));
        let v3_with_password = Repr {
            auth: Auth::simple_password("x"),
            ..v3()
        };
        assert_eq!(
            v3_with_password.to_bytes(&ep, ChecksumForm::MessageOnly),
            Err(EmitError::AuthInV3)
        );
        let too_many = Repr {
            addresses: VirtualAddresses::V4(vec![SRC; 256]),
            ..v3()
        };
        assert_eq!(
            too_many.to_bytes(&ep, ChecksumForm::MessageOnly),
            Err(EmitError::TooManyAddresses { count: 256 })
        );
        let v6_endpoints = Endpoints::ipv6_multicast(Ipv6Addr::LOCALHOST);
        assert!(matches!(
            v3().to_bytes(&v6_endpoints, ChecksumForm::MessageOnly),
            Err(EmitError::FamilyMismatch { .. })
        ));
        let mut small = Packet::new_unchecked([0u8; 11], AddressFamily::Ipv4);
        assert_eq!(
            v3().emit(&mut small, &ep, ChecksumForm::MessageOnly),
            Err(EmitError::BufferTooSmall {
                needed: 12,
                available: 11
            })
        );
    }

    #[test]
    fn the_largest_advert_round_trips() {
        let repr = Repr {
            addresses: VirtualAddresses::V4(vec![SRC; 255]),
            ..v2()
        };
        let bytes = repr
            .to_bytes(&endpoints(), ChecksumForm::MessageOnly)
            .expect("valid");
        assert_eq!(parse(&bytes).map(|p| p.repr), Ok(repr));
    }

    #[test]
    fn passwords_are_cut_and_padded_like_keepalived_and_not_logged() {
        assert_eq!(SimplePassword::new(b"longpassword").as_bytes(), b"longpass");
        assert_eq!(SimplePassword::new(b"1234").as_bytes(), b"1234\0\0\0\0");
        assert_eq!(
            format!("{:?}", Auth::simple_password("secret")),
            "SimplePassword(SimplePassword(<redacted>))"
        );
    }

    #[test]
    fn interval_units() {
        assert_eq!(secs(2).centiseconds(), 200);
        assert_eq!(
            AdvertInterval::from_wire_field(Version::V2, 255),
            Ok(secs(255))
        );
        assert_eq!(centis(150).wire_field(Version::V3), Ok(150));
        assert_eq!(centis(300).wire_field(Version::V2), Ok(3));
        assert_eq!(centis(5).to_string(), "0.05 s");
        assert_eq!(secs(1).to_string(), "1 s");
    }

    #[test]
    fn v2_interval_must_match_configuration_v3_need_not() {
        let configured = secs(1);
        assert_eq!(
            v2().verify_advert_interval(configured),
            Err(Error::AdvertIntervalMismatch {
                found: secs(3),
                expected: configured
            })
        );
        assert_eq!(v3().verify_advert_interval(configured), Ok(()));
        assert_eq!(v3().verify_auth(&Auth::simple_password("x")), Ok(()));
    }

    #[test]
    fn effective_forms() {
        use AddressFamily::*;
        use ChecksumForm::*;
        assert_eq!(
            effective_form(Version::V2, Ipv4, WithPseudoHeader),
            MessageOnly
        );
        assert_eq!(
            effective_form(Version::V3, Ipv6, MessageOnly),
            WithPseudoHeader
        );
        assert_eq!(effective_form(Version::V3, Ipv4, MessageOnly), MessageOnly);
        assert_eq!(
            effective_form(Version::V3, Ipv4, WithPseudoHeader),
            WithPseudoHeader
        );
    }
}
