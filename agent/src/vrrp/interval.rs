//! The advertisement interval: one validated type shared by the wire codec
//! (which reads and writes it in each version's unit) and the election
//! (which times Master_Down_Interval and Skew_Time from it).

use std::fmt;
use std::time::Duration;

use super::Version;

const NANOS_PER_CENTISECOND: u64 = 10_000_000;

/// An advertisement interval, stored in centiseconds (the VRRPv3 wire unit).
///
/// VRRPv3 carries 12 bits: 1..=4095 cs (RFC 5798 §5.2.7). VRRPv2 carries
/// whole seconds, 1..=255 (RFC 3768 §5.3.7), stored here as 100..=25500 cs.
/// Every value was valid for the version it was made for; whether it also
/// fits another version is [`AdvertInterval::wire_field`]'s question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct AdvertInterval(u16);

/// Why an advertisement interval is not valid for a protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    /// Zero would mean adverts without pause and a zero Master_Down_Interval.
    #[error(
        "advertisement interval 0 is invalid: expected at least 1 centisecond (VRRPv3) or 1 second (VRRPv2)"
    )]
    Zero,
    /// VRRPv3 has only 12 bits for the interval.
    #[error(
        "advertisement interval {centiseconds} cs is too long for VRRPv3: expected 1..=4095 centiseconds (at most 40.95 s)"
    )]
    TooLongForV3 {
        /// The rejected interval.
        centiseconds: u32,
    },
    /// VRRPv2 carries whole seconds only.
    #[error(
        "advertisement interval {centiseconds} cs is not a whole number of seconds: VRRPv2 expects 1..=255 whole seconds"
    )]
    NotWholeSecondsForV2 {
        /// The rejected interval.
        centiseconds: u32,
    },
    /// VRRPv2 has 8 bits of seconds.
    #[error(
        "advertisement interval {centiseconds} cs is too long for VRRPv2: expected 1..=255 seconds"
    )]
    TooLongForV2 {
        /// The rejected interval.
        centiseconds: u32,
    },
}

impl AdvertInterval {
    /// One second, the keepalived and RFC default.
    #[cfg(test)]
    pub const ONE_SECOND: AdvertInterval = AdvertInterval(100);

    /// Checks `centiseconds` against what `version` can carry on the wire.
    pub fn from_centiseconds(version: Version, centiseconds: u32) -> Result<Self, IntervalError> {
        if centiseconds == 0 {
            return Err(IntervalError::Zero);
        }
        match version {
            Version::V3 if centiseconds > 4095 => Err(IntervalError::TooLongForV3 { centiseconds }),
            Version::V2 if !centiseconds.is_multiple_of(100) => {
                Err(IntervalError::NotWholeSecondsForV2 { centiseconds })
            }
            Version::V2 if centiseconds > 25_500 => {
                Err(IntervalError::TooLongForV2 { centiseconds })
            }
            _ => u16::try_from(centiseconds)
                .map(AdvertInterval)
                .map_err(|_| IntervalError::TooLongForV2 { centiseconds }),
        }
    }

    /// Reads the raw interval field of `version`: seconds for VRRPv2,
    /// centiseconds for VRRPv3.
    #[cfg(test)]
    pub fn from_wire_field(version: Version, field: u16) -> Result<Self, IntervalError> {
        let centiseconds = match version {
            Version::V2 => u32::from(field) * 100,
            Version::V3 => u32::from(field),
        };
        Self::from_centiseconds(version, centiseconds)
    }

    /// The raw interval field for `version` — seconds (1..=255) for v2,
    /// centiseconds (1..=4095) for v3 — or why this interval does not fit
    /// it (a 0.5 s interval cannot be sent as VRRPv2).
    pub fn wire_field(self, version: Version) -> Result<u16, IntervalError> {
        Self::from_centiseconds(version, u32::from(self.0))?;
        Ok(match version {
            Version::V2 => self.0 / 100,
            Version::V3 => self.0,
        })
    }

    /// The interval in centiseconds.
    pub const fn centiseconds(self) -> u16 {
        self.0
    }

    /// The interval as a duration.
    pub fn as_duration(self) -> Duration {
        Duration::from_nanos(u64::from(self.0) * NANOS_PER_CENTISECOND)
    }
}

impl fmt::Display for AdvertInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(100) {
            write!(f, "{} s", self.0 / 100)
        } else {
            write!(f, "{}.{:02} s", self.0 / 100, self.0 % 100)
        }
    }
}

#[cfg(test)]
impl AdvertInterval {
    /// Test shorthand for an interval known to be valid for `version`.
    pub(crate) fn checked(version: Version, centiseconds: u32) -> Self {
        match Self::from_centiseconds(version, centiseconds) {
            Ok(interval) => interval,
            Err(e) => panic!("test interval {centiseconds} cs rejected: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 5798 §5.2.7 (12-bit centiseconds) and RFC 3768 §5.3.7 (8-bit seconds).
    #[test]
    fn rfc5798_5_2_7_and_rfc3768_5_3_7_interval_ranges() {
        assert_eq!(
            AdvertInterval::from_centiseconds(Version::V3, 0),
            Err(IntervalError::Zero)
        );
        assert_eq!(
            AdvertInterval::checked(Version::V3, 4095).centiseconds(),
            4095
        );
        assert_eq!(
            AdvertInterval::from_centiseconds(Version::V3, 4096),
            Err(IntervalError::TooLongForV3 { centiseconds: 4096 })
        );
        assert_eq!(
            AdvertInterval::from_centiseconds(Version::V2, 150),
            Err(IntervalError::NotWholeSecondsForV2 { centiseconds: 150 })
        );
        assert_eq!(
            AdvertInterval::checked(Version::V2, 25_500).centiseconds(),
            25_500
        );
        assert_eq!(
            AdvertInterval::from_centiseconds(Version::V2, 25_600),
            Err(IntervalError::TooLongForV2 {
                centiseconds: 25_600
            })
        );
        assert_eq!(
            AdvertInterval::from_centiseconds(Version::V2, 1_000_000),
            Err(IntervalError::TooLongForV2 {
                centiseconds: 1_000_000
            })
        );
    }
}
