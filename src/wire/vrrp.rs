//! VRRP advertisements, version 3 (RFC 9568) over IPv4 and IPv6, and version 2 (RFC 3768)
//! over IPv4: a checked view over bytes ([`Packet`]) and a plain value ([`Repr`]).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! |(rsvd) |     Max Adver Int     |          Checksum             |   v3
//! |   Auth Type   |   Adver Int   |          Checksum             |   v2
//! |                  IPvX Address(es) ...                         |
//! |                  Authentication Data (v2 only, 8 bytes)       |
//! ```

use super::checksum;
use super::{Family, WireError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Byte ranges of the fixed header (smoltcp's `mod field`).
mod field {
    use std::ops::Range;

    /// Version (high nibble) and type (low nibble).
    pub const VERSION_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v3: 4 reserved bits and 12 bits of Max Advertise Interval (centiseconds).
    pub const MAX_ADVER_INT: Range<usize> = 4..6;
    /// v2: authentication type, then the interval in seconds.
    pub const AUTH_TYPE: usize = 4;
    pub const ADVER_INT: usize = 5;
    pub const CHECKSUM: Range<usize> = 6..8;
    /// The addresses start here.
    pub const ADDRESSES: usize = 8;
}

/// Length of the fixed part of every VRRP message.
pub const HEADER_LEN: usize = field::ADDRESSES;
/// Length of the authentication data trailing a VRRPv2 message.
pub const V2_AUTH_LEN: usize = 8;
/// The only message type VRRP defines.
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// Largest v3 Max Advertise Interval: 12 bits of centiseconds.
pub const MAX_V3_INTERVAL_CS: u16 = 0x0fff;

/// Protocol version on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V2,
    V3,
}

impl Version {
    fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// How the checksum of a VRRPv3-over-IPv4 message is computed. IPv6 always uses the
/// pseudo-header and VRRPv2 never does, so this only matters for v3 over IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ipv4ChecksumForm {
    /// With the IPv4 pseudo-header: keepalived's and FRR's default.
    #[default]
    PseudoHeader,
    /// Over the VRRP message only, as RFC 9568 words it (keepalived `v3_checksum_as_v2`).
    MessageOnly,
}

/// The IP addresses around a message, needed for pseudo-header checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpEnds {
    pub src: IpAddr,
    pub dst: IpAddr,
}

impl IpEnds {
    fn family(&self) -> Family {
        Family::of(&self.src)
    }
}

/// A read/write view of a VRRP message in a buffer. Accessors do not check bounds beyond
/// what [`Packet::new_checked`] verified.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking that it holds a whole message of `family`.
    pub fn new_checked(buffer: T, family: Family) -> Result<Self, WireError> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len(family)?;
        Ok(packet)
    }

    /// Checks that the buffer is long enough for the header, the advertised number of
    /// addresses and (v2) the authentication data. Extra trailing bytes are allowed: RFC 9568
    /// leaves them to the receiver, and the IP length already bounds the buffer.
    pub fn check_len(&self, family: Family) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated {
                needed: HEADER_LEN,
                got: len,
            });
        }
        let needed = self.message_len(family);
        if len < needed {
            return Err(WireError::Truncated { needed, got: len });
        }
        Ok(())
    }

    /// The length this message declares through its version and address count.
    pub fn message_len(&self, family: Family) -> usize {
        let trailer = if self.version_number() == 2 {
            V2_AUTH_LEN
        } else {
            0
        };
        HEADER_LEN + usize::from(self.count()) * family.address_len() + trailer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version_number(&self) -> u8 {
        self.bytes()[field::VERSION_TYPE] >> 4
    }

    pub fn message_type(&self) -> u8 {
        self.bytes()[field::VERSION_TYPE] & 0x0f
    }

    pub fn vrid(&self) -> u8 {
        self.bytes()[field::VRID]
    }

    pub fn priority(&self) -> u8 {
        self.bytes()[field::PRIORITY]
    }

    pub fn count(&self) -> u8 {
        self.bytes()[field::COUNT]
    }

    /// v3: Max Advertise Interval in centiseconds (the low 12 bits of bytes 4..6).
    pub fn max_advert_interval_cs(&self) -> u16 {
        let raw = &self.bytes()[field::MAX_ADVER_INT];
        u16::from_be_bytes([raw[0], raw[1]]) & MAX_V3_INTERVAL_CS
    }

    /// v2: authentication type.
    pub fn auth_type(&self) -> u8 {
        self.bytes()[field::AUTH_TYPE]
    }

    /// v2: advertisement interval in seconds.
    pub fn advert_interval_s(&self) -> u8 {
        self.bytes()[field::ADVER_INT]
    }

    pub fn checksum(&self) -> u16 {
        let raw = &self.bytes()[field::CHECKSUM];
        u16::from_be_bytes([raw[0], raw[1]])
    }

    /// The raw address bytes.
    pub fn address_bytes(&self, family: Family) -> &[u8] {
        let end = field::ADDRESSES + usize::from(self.count()) * family.address_len();
        &self.bytes()[field::ADDRESSES..end]
    }

    /// v2: the 8 bytes of authentication data after the addresses.
    pub fn auth_data(&self) -> [u8; V2_AUTH_LEN] {
        let start = field::ADDRESSES + usize::from(self.count()) * Family::V4.address_len();
        let mut data = [0; V2_AUTH_LEN];
        data.copy_from_slice(&self.bytes()[start..start + V2_AUTH_LEN]);
        data
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    pub fn set_version_and_type(&mut self, version: Version, message_type: u8) {
        self.bytes_mut()[field::VERSION_TYPE] = (version.number() << 4) | (message_type & 0x0f);
    }

    pub fn set_vrid(&mut self, vrid: u8) {
        self.bytes_mut()[field::VRID] = vrid;
    }

    pub fn set_priority(&mut self, priority: u8) {
        self.bytes_mut()[field::PRIORITY] = priority;
    }

    pub fn set_count(&mut self, count: u8) {
        self.bytes_mut()[field::COUNT] = count;
    }

    /// v3: writes the interval with the reserved bits zero.
    pub fn set_max_advert_interval_cs(&mut self, centis: u16) {
        let word = centis & MAX_V3_INTERVAL_CS;
        self.bytes_mut()[field::MAX_ADVER_INT].copy_from_slice(&word.to_be_bytes());
    }

    pub fn set_auth_type(&mut self, auth_type: u8) {
        self.bytes_mut()[field::AUTH_TYPE] = auth_type;
    }

    pub fn set_advert_interval_s(&mut self, seconds: u8) {
        self.bytes_mut()[field::ADVER_INT] = seconds;
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.bytes_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }
}

/// VRRPv2 authentication (RFC 3768 removed all but type 0; keepalived still offers PASS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct V2Auth {
    pub auth_type: u8,
    pub data: [u8; V2_AUTH_LEN],
}

/// A parsed, valid advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2 carries whole seconds: a multiple of 100).
    pub interval_cs: u16,
    /// The virtual addresses, all of one family.
    pub addresses: Vec<IpAddr>,
    /// v2 only.
    pub auth: V2Auth,
}

impl Repr {
    /// Parses and validates a message received between `ends`. Returns the advertisement
    /// and, for v3 over IPv4, which checksum form it carried (both are accepted).
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Packet<T>,
        ends: IpEnds,
    ) -> Result<(Repr, Option<Ipv4ChecksumForm>), WireError> {
        let family = ends.family();
        let got = packet.bytes().len();
        if got < HEADER_LEN {
            return Err(WireError::Truncated {
                needed: HEADER_LEN,
                got,
            });
        }
        let version = match packet.version_number() {
            3 => Version::V3,
            2 if family == Family::V4 => Version::V2,
            2 => return Err(WireError::V2OverIpv6),
            other => return Err(WireError::UnknownVersion(other)),
        };
        packet.check_len(family)?;
        if packet.message_type() != TYPE_ADVERTISEMENT {
            return Err(WireError::UnknownType(packet.message_type()));
        }
        if packet.vrid() == 0 {
            return Err(WireError::ZeroVrid);
        }
        if packet.count() == 0 {
            return Err(WireError::ZeroCount);
        }
        let interval_cs = match version {
            Version::V3 => packet.max_advert_interval_cs(),
            Version::V2 => u16::from(packet.advert_interval_s()) * 100,
        };
        if interval_cs == 0 {
            return Err(WireError::ZeroInterval);
        }
        // After the other rules: what they name is the better reason.
        let declared = packet.message_len(family);
        if got > declared {
            return Err(WireError::TrailingBytes { declared, got });
        }
        let message = &packet.bytes()[..packet.message_len(family)];
        let form = verify_checksum(version, ends, message)?;
        let addresses = packet
            .address_bytes(family)
            .chunks_exact(family.address_len())
            .map(|raw| match family {
                Family::V4 => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
                Family::V6 => {
                    let octets: [u8; 16] = raw.try_into().expect("chunk of 16 bytes");
                    IpAddr::V6(Ipv6Addr::from(octets))
                }
            })
            .collect();
        let auth = match version {
            Version::V2 => V2Auth {
                auth_type: packet.auth_type(),
                data: packet.auth_data(),
            },
            Version::V3 => V2Auth::default(),
        };
        let repr = Repr {
            version,
            vrid: packet.vrid(),
            priority: packet.priority(),
            interval_cs,
            addresses,
            auth,
        };
        Ok((repr, form))
    }

    /// Bytes needed to emit this message.
    pub fn buffer_len(&self) -> usize {
        let family = self.family();
        let trailer = if self.version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        HEADER_LEN + self.addresses.len() * family.address_len() + trailer
    }

    fn family(&self) -> Family {
        self.addresses.first().map_or(Family::V4, Family::of)
    }

    /// Writes the message into `buffer` (at least [`Repr::buffer_len`] bytes) with the
    /// checksum for `ends`; `form` chooses the v3-over-IPv4 checksum.
    pub fn emit(
        &self,
        buffer: &mut [u8],
        ends: IpEnds,
        form: Ipv4ChecksumForm,
    ) -> Result<usize, WireError> {
        let family = self.family();
        let len = self.buffer_len();
        if self.addresses.is_empty() {
            return Err(WireError::ZeroCount);
        }
        if self.addresses.len() > usize::from(u8::MAX) {
            return Err(WireError::Unrepresentable("more than 255 addresses"));
        }
        if self.addresses.iter().any(|a| Family::of(a) != family) || ends.family() != family {
            return Err(WireError::Unrepresentable("addresses of mixed families"));
        }
        if buffer.len() < len {
            return Err(WireError::Truncated {
                needed: len,
                got: buffer.len(),
            });
        }
        let buffer = &mut buffer[..len];
        buffer.fill(0);
        let mut packet = Packet::new_unchecked(&mut *buffer);
        packet.set_version_and_type(self.version, TYPE_ADVERTISEMENT);
        packet.set_vrid(self.vrid);
        packet.set_priority(self.priority);
        packet.set_count(self.addresses.len() as u8);
        match self.version {
            Version::V3 => {
                if self.interval_cs == 0 || self.interval_cs > MAX_V3_INTERVAL_CS {
                    return Err(WireError::Unrepresentable(
                        "v3 interval outside 1..=4095 cs",
                    ));
                }
                packet.set_max_advert_interval_cs(self.interval_cs);
            }
            Version::V2 => {
                if family == Family::V6 {
                    return Err(WireError::V2OverIpv6);
                }
                let seconds = self.interval_cs / 100;
                if !self.interval_cs.is_multiple_of(100) || seconds == 0 || seconds > 255 {
                    return Err(WireError::Unrepresentable(
                        "v2 interval not 1..=255 whole seconds",
                    ));
                }
                packet.set_auth_type(self.auth.auth_type);
                packet.set_advert_interval_s(seconds as u8);
            }
        }
        let mut offset = field::ADDRESSES;
        for address in &self.addresses {
            match address {
                IpAddr::V4(a) => buffer[offset..offset + 4].copy_from_slice(&a.octets()),
                IpAddr::V6(a) => buffer[offset..offset + 16].copy_from_slice(&a.octets()),
            }
            offset += family.address_len();
        }
        if self.version == Version::V2 {
            buffer[offset..offset + V2_AUTH_LEN].copy_from_slice(&self.auth.data);
        }
        let sum = compute_checksum(self.version, ends, form, buffer);
        Packet::new_unchecked(buffer).set_checksum(sum);
        Ok(len)
    }
}

fn compute_checksum(version: Version, ends: IpEnds, form: Ipv4ChecksumForm, message: &[u8]) -> u16 {
    match (version, ends.src, ends.dst, form) {
        (Version::V2, ..) | (Version::V3, IpAddr::V4(_), _, Ipv4ChecksumForm::MessageOnly) => {
            checksum::plain(message)
        }
        (Version::V3, IpAddr::V4(src), IpAddr::V4(dst), Ipv4ChecksumForm::PseudoHeader) => {
            checksum::with_ipv4_pseudo_header(src, dst, message)
        }
        (Version::V3, IpAddr::V6(src), IpAddr::V6(dst), _) => {
            checksum::with_ipv6_pseudo_header(src, dst, message)
        }
        // Mixed families are rejected before a checksum is computed.
        _ => checksum::plain(message),
    }
}

/// A correct checksum leaves a zero sum over the message with its checksum field filled in:
/// verified in place, without copying the message. The expected value (for the error) is
/// computed only for a message that fails.
fn verify_checksum(
    version: Version,
    ends: IpEnds,
    message: &[u8],
) -> Result<Option<Ipv4ChecksumForm>, WireError> {
    let sums_to_zero = |form| compute_checksum(version, ends, form, message) == 0;
    let accepted = match (version, ends.src) {
        (Version::V3, IpAddr::V4(_)) => [
            Ipv4ChecksumForm::PseudoHeader,
            Ipv4ChecksumForm::MessageOnly,
        ]
        .into_iter()
        .find(|form| sums_to_zero(*form))
        .map(Some),
        _ => sums_to_zero(Ipv4ChecksumForm::PseudoHeader).then_some(None),
    };
    accepted.ok_or_else(|| {
        let mut zeroed = message.to_vec();
        zeroed[field::CHECKSUM].fill(0);
        WireError::BadChecksum {
            got: Packet::new_unchecked(message).checksum(),
            expected: compute_checksum(version, ends, Ipv4ChecksumForm::PseudoHeader, &zeroed),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_ends() -> IpEnds {
        IpEnds {
            src: "192.0.2.11".parse().unwrap(),
            dst: "224.0.0.18".parse().unwrap(),
        }
    }

    fn sample() -> Repr {
        Repr {
            version: Version::V3,
            vrid: 51,
            priority: 150,
            interval_cs: 10,
            addresses: vec!["192.0.2.100".parse().unwrap()],
            auth: V2Auth::default(),
        }
    }

    #[test]
    fn emits_both_checksum_forms_and_parses_them_back() {
        for form in [
            Ipv4ChecksumForm::PseudoHeader,
            Ipv4ChecksumForm::MessageOnly,
        ] {
            let mut buf = [0u8; 64];
            let len = sample().emit(&mut buf, v4_ends(), form).unwrap();
            assert_eq!(len, 12);
            let (repr, got_form) =
                Repr::parse(&Packet::new_unchecked(&buf[..len]), v4_ends()).unwrap();
            assert_eq!(repr, sample());
            assert_eq!(got_form, Some(form));
        }
    }

    #[test]
    fn reserved_bits_are_ignored_on_receive_and_zero_on_send() {
        let mut buf = [0u8; 12];
        sample()
            .emit(&mut buf, v4_ends(), Ipv4ChecksumForm::MessageOnly)
            .unwrap();
        assert_eq!(buf[4] & 0xf0, 0);
        buf[4] |= 0xf0;
        let sum = checksum::plain(&{
            let mut z = buf;
            z[6..8].fill(0);
            z
        });
        Packet::new_unchecked(&mut buf[..]).set_checksum(sum);
        let (repr, _) = Repr::parse(&Packet::new_unchecked(&buf[..]), v4_ends()).unwrap();
        assert_eq!(repr.interval_cs, 10);
    }

    #[test]
    fn every_discard_rule_is_a_typed_error() {
        let mut good = [0u8; 12];
        sample()
            .emit(&mut good, v4_ends(), Ipv4ChecksumForm::MessageOnly)
            .unwrap();
        let refill = |mut b: [u8; 12]| {
            b[6..8].fill(0);
            let sum = checksum::plain(&b);
            b[6..8].copy_from_slice(&sum.to_be_bytes());
            b
        };
        let parse = |b: &[u8]| Repr::parse(&Packet::new_unchecked(b), v4_ends()).map(|r| r.0);

        assert_eq!(
            parse(&good[..7]),
            Err(WireError::Truncated { needed: 8, got: 7 })
        );
        assert_eq!(
            parse(&good[..11]),
            Err(WireError::Truncated {
                needed: 12,
                got: 11
            })
        );
        let mut b = good;
        b[0] = 0x41;
        assert_eq!(parse(&refill(b)), Err(WireError::UnknownVersion(4)));
        let mut b = good;
        b[0] = 0x32;
        assert_eq!(parse(&refill(b)), Err(WireError::UnknownType(2)));
        let mut b = good;
        b[1] = 0;
        assert_eq!(parse(&refill(b)), Err(WireError::ZeroVrid));
        let mut b = good;
        b[3] = 0;
        assert_eq!(parse(&refill(b)), Err(WireError::ZeroCount));
        let mut b = good;
        b[4] = 0;
        b[5] = 0;
        assert_eq!(parse(&refill(b)), Err(WireError::ZeroInterval));
        let mut b = good;
        b[2] = 151;
        assert!(matches!(parse(&b), Err(WireError::BadChecksum { .. })));
        let v6 = IpEnds {
            src: "fe80::1".parse().unwrap(),
            dst: "ff02::12".parse().unwrap(),
        };
        let mut b = good;
        b[0] = 0x21;
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&b[..]), v6).map(|r| r.0),
            Err(WireError::V2OverIpv6)
        );
    }
}
