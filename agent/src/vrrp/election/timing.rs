//! Protocol timers: Skew_Time and Master_Down_Interval from the
//! advertisement interval ([`AdvertInterval`]).
//!
//! Everything is computed in integer nanoseconds. For VRRPv2 the result is
//! exact (10^9 / 256 = 3 906 250). For VRRPv3 the RFC formula in
//! centiseconds is evaluated in nanoseconds and rounded down, so the error
//! is below one nanosecond; rounding in whole centiseconds, as a literal
//! reading of RFC 5798 §6.1 would, would lose up to 10 ms of skew.

use std::time::Duration;

use crate::vrrp::{AdvertInterval, Version};

const NANOS_PER_CENTISECOND: u64 = 10_000_000;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Skew_Time for a router of `priority`.
///
/// - VRRPv2 (RFC 3768 §6.1): `(256 - priority) / 256` seconds.
/// - VRRPv3 (RFC 5798 §6.1): `((256 - priority) * Master_Adver_Interval) / 256`.
pub fn skew_time(
    version: Version,
    priority: u8,
    master_adver_interval: AdvertInterval,
) -> Duration {
    let weight = 256 - u64::from(priority);
    let nanos = match version {
        Version::V2 => weight * (NANOS_PER_SECOND / 256),
        Version::V3 => {
            weight * u64::from(master_adver_interval.centiseconds()) * NANOS_PER_CENTISECOND / 256
        }
    };
    Duration::from_nanos(nanos)
}

/// Master_Down_Interval = 3 × Master_Adver_Interval + Skew_Time
/// (RFC 5798 §6.1; RFC 3768 §6.1 with Advertisement_Interval).
pub fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval: AdvertInterval,
) -> Duration {
    master_adver_interval.as_duration() * 3 + skew_time(version, priority, master_adver_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs(version: Version, value: u32) -> AdvertInterval {
        match AdvertInterval::from_centiseconds(version, value) {
            Ok(interval) => interval,
            Err(e) => panic!("test interval {value} cs rejected: {e}"),
        }
    }

    // RFC 3768 §6.1: Skew_Time = (256 - Priority) / 256 seconds.
    #[test]
    fn rfc3768_6_1_v2_skew_is_256ths_of_a_second() {
        let one_s = cs(Version::V2, 100);
        assert_eq!(
            skew_time(Version::V2, 100, one_s),
            Duration::from_nanos(609_375_000)
        );
        assert_eq!(
            skew_time(Version::V2, 255, one_s),
            Duration::from_nanos(3_906_250)
        );
        assert_eq!(
            skew_time(Version::V2, 1, one_s),
            Duration::from_nanos(996_093_750)
        );
        // The v2 skew does not scale with the interval.
        assert_eq!(
            skew_time(Version::V2, 100, cs(Version::V2, 500)),
            Duration::from_nanos(609_375_000)
        );
    }

    // RFC 3768 §6.1: Master_Down_Interval = 3 * Advertisement_Interval + Skew_Time.
    #[test]
    fn rfc3768_6_1_v2_master_down_interval() {
        assert_eq!(
            master_down_interval(Version::V2, 100, cs(Version::V2, 100)),
            Duration::from_nanos(3_609_375_000)
        );
        assert_eq!(
            master_down_interval(Version::V2, 200, cs(Version::V2, 300)),
            Duration::from_nanos(9_000_000_000 + 56 * 3_906_250)
        );
    }

    // RFC 5798 §6.1: Skew_Time = ((256 - priority) * Master_Adver_Interval) / 256 (centiseconds).
    #[test]
    fn rfc5798_6_1_v3_skew_scales_with_master_adver_interval() {
        assert_eq!(
            skew_time(Version::V3, 100, cs(Version::V3, 100)),
            Duration::from_nanos(609_375_000)
        );
        // 156 * 10 cs / 256 = 6.09375 cs, kept to the nanosecond.
        assert_eq!(
            skew_time(Version::V3, 100, cs(Version::V3, 10)),
            Duration::from_nanos(60_937_500)
        );
        // 1 * 1 cs / 256 = 39 062.5 ns: the only case class that rounds (down).
        assert_eq!(
            skew_time(Version::V3, 255, cs(Version::V3, 1)),
            Duration::from_nanos(39_062)
        );
        assert_eq!(
            skew_time(Version::V3, 1, cs(Version::V3, 4095)),
            Duration::from_nanos(255 * 4095 * 10_000_000 / 256)
        );
    }

    // RFC 5798 §6.1: Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_Time.
    #[test]
    fn rfc5798_6_1_v3_master_down_interval() {
        assert_eq!(
            master_down_interval(Version::V3, 100, cs(Version::V3, 100)),
            Duration::from_nanos(3_609_375_000)
        );
        assert_eq!(
            master_down_interval(Version::V3, 254, cs(Version::V3, 5)),
            Duration::from_nanos(150_000_000 + 2 * 5 * 10_000_000 / 256)
        );
    }
}
