//! Injected time: a point on the caller's monotonic clock.

use std::time::Duration;

/// A point in time, in nanoseconds since an arbitrary epoch of a monotonic
/// clock chosen by the caller (e.g. `CLOCK_MONOTONIC`, which is also what
/// the kernel's `bpf_ktime_get_ns` uses, so XDP receive stamps fit directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch of the caller's clock.
    #[cfg(test)]
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `nanos` nanoseconds after the clock's epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the clock's epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far end of the clock (u64 nanoseconds
    /// last 584 years, so saturation only matters for hostile inputs).
    pub fn saturating_add(self, d: Duration) -> Self {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(add))
    }

    /// How long after `earlier` this is; zero if `earlier` is later.
    #[cfg(test)]
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_difference_are_exact_in_nanoseconds() {
        let t = Timestamp::from_nanos(1_000);
        let later = t.saturating_add(Duration::from_nanos(609_375_000));
        assert_eq!(later.as_nanos(), 609_376_000);
        assert_eq!(
            later.saturating_duration_since(t),
            Duration::from_nanos(609_375_000)
        );
        assert_eq!(t.saturating_duration_since(later), Duration::ZERO);
    }

    #[test]
    fn add_saturates_instead_of_wrapping() {
        let t = Timestamp::from_nanos(u64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(1)).as_nanos(),
            u64::MAX
        );
        assert_eq!(
            Timestamp::ZERO.saturating_add(Duration::MAX).as_nanos(),
            u64::MAX
        );
    }
}
