//! What one virtual router instance is configured with, and its validation.

use std::net::IpAddr;
use std::time::Duration;

use super::tracking::TrackedItem;
use crate::vrrp::{AdvertInterval, IntervalError, Version};

/// keepalived's `state MASTER|BACKUP`.
///
/// keepalived 2.2.7 (measured in a namespace, advert_int 1): with priority
/// 100, `state MASTER` and `state BACKUP` both enter BACKUP and become master
/// after Master_Down_Interval (3.61 s); with priority 255, `state MASTER`
/// becomes master at once while `state BACKUP` waits 3.004 s. We follow RFC
/// 5798 §6.4.1 instead for the owner (priority 255 always starts as master)
/// and keepalived for everyone else: the wish is recorded (`--dump-config`
/// shows it), but a non-owner always starts in Backup, so a freshly started router never
/// steals the VIPs from a running master of higher priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum InitialState {
    /// `state BACKUP` (the default).
    #[default]
    Backup,
    /// `state MASTER`.
    Master,
}

/// Configuration of one virtual router instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceConfig {
    /// Virtual router id, 1..=255.
    pub vrid: u8,
    /// VRRP version this instance speaks.
    pub version: Version,
    /// Base priority, 1..=255; 255 makes this router the address owner.
    pub priority: u8,
    /// Advertisement_Interval in centiseconds (v2: whole seconds × 100).
    pub advert_interval_cs: u32,
    /// keepalived's `state`; see [`InitialState`] for what it changes.
    pub initial_state: InitialState,
    /// Preempt_Mode (`nopreempt` sets it false).
    pub preempt: bool,
    /// keepalived's `preempt_delay`, 0..=1000 s: how long a backup keeps
    /// accepting a lower-priority master after first seeing one.
    pub preempt_delay: Duration,
    /// Accept_Mode: whether a non-owner master accepts packets addressed to
    /// the VIPs. keepalived without `vrrp_strict` never blocks them, hence
    /// the `true` default of [`InstanceConfig::new`]; RFC 5798's default is false.
    pub accept: bool,
    /// Whether a master answers a lower-priority advert (or an equal one
    /// from a lower address) with an advert of its own at once. RFC 5798
    /// §6.4.3 discards it silently (false, the default here); keepalived
    /// replies unless `lower_prio_no_advert` or `vrrp_strict` is set, which
    /// makes a lower router that wrongly became master yield at once.
    pub advert_on_lower_priority: bool,
    /// keepalived's `higher_prio_send_advert`: a master that yields sends
    /// one advert with its own priority first (see
    /// [`super::Action::SendYieldingAdvert`]). Off by default, and in
    /// strict mode.
    pub advert_before_yielding: bool,
    /// This router's primary address on the VRRP interface: the advert
    /// source, and the tie-break between equal priorities (RFC 5798 §6.4.3).
    pub primary_address: IpAddr,
    /// Tracked scripts/interfaces/files with their weights, by index.
    pub tracked: Vec<TrackedItem>,
}

/// A configuration value the election cannot run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// VRID 0 is not a valid virtual router.
    #[error("virtual_router_id 0 is invalid: expected 1..=255")]
    VridZero,
    /// Priority 0 is reserved for "master is stopping" adverts.
    #[error(
        "priority 0 is reserved for a stopping master's advert: expected 1..=254, or 255 for the address owner"
    )]
    PriorityZero,
    /// The advertisement interval does not fit the version.
    #[error("virtual router {vrid}: {source}")]
    Interval {
        /// The instance's VRID.
        vrid: u8,
        /// What is wrong with the interval.
        source: IntervalError,
    },
    /// The primary address is needed as advert source and tie-breaker.
    #[error(
        "virtual router {vrid}: primary address {address} is unspecified: expected the VRRP interface's own address"
    )]
    UnspecifiedPrimaryAddress {
        /// The instance's VRID.
        vrid: u8,
        /// The rejected address.
        address: IpAddr,
    },
    /// A tracked item's weight is outside keepalived's range.
    #[error(
        "virtual router {vrid}: tracked item #{index} has weight {weight}: expected -253..=253"
    )]
    WeightOutOfRange {
        /// The instance's VRID.
        vrid: u8,
        /// Index of the item in [`InstanceConfig::tracked`].
        index: usize,
        /// The rejected weight.
        weight: i32,
    },
    /// keepalived accepts `preempt_delay` up to 1000 s.
    #[error(
        "virtual router {vrid}: preempt_delay of {seconds} s is too long: expected 0..=1000 seconds"
    )]
    PreemptDelayTooLong {
        /// The instance's VRID.
        vrid: u8,
        /// The rejected delay, in whole seconds.
        seconds: u64,
    },
}

/// The configuration after validation, with the interval in its checked form.
#[derive(Debug, Clone)]
pub(super) struct CheckedConfig {
    pub(super) vrid: u8,
    pub(super) version: Version,
    pub(super) base_priority: u8,
    pub(super) advert_interval: AdvertInterval,
    /// Not acted on (see [`InitialState`]); kept so the tests can show that.
    #[cfg_attr(not(test), expect(dead_code, reason = "read only by the tests"))]
    pub(super) initial_state: InitialState,
    pub(super) preempt: bool,
    pub(super) preempt_delay: Duration,
    pub(super) accept: bool,
    pub(super) advert_on_lower_priority: bool,
    pub(super) advert_before_yielding: bool,
    pub(super) primary_address: IpAddr,
}

impl InstanceConfig {
    /// keepalived's defaults for a `vrrp_instance`: VRRPv2, priority 100,
    /// `advert_int 1`, `state BACKUP`, preempt on without delay, accepting
    /// traffic to the VIPs, nothing tracked; except that lower-priority
    /// adverts get no reply (the RFC's rule, see
    /// [`InstanceConfig::advert_on_lower_priority`]).
    pub fn new(vrid: u8, primary_address: IpAddr) -> Self {
        InstanceConfig {
            vrid,
            version: Version::V2,
            priority: 100,
            advert_interval_cs: 100,
            initial_state: InitialState::Backup,
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept: true,
            advert_on_lower_priority: false,
            advert_before_yielding: false,
            primary_address,
            tracked: Vec::new(),
        }
    }

    pub(super) fn check(&self) -> Result<CheckedConfig, ConfigError> {
        let vrid = self.vrid;
        if vrid == 0 {
            return Err(ConfigError::VridZero);
        }
        if self.priority == 0 {
            return Err(ConfigError::PriorityZero);
        }
        let advert_interval =
            AdvertInterval::from_centiseconds(self.version, self.advert_interval_cs)
                .map_err(|source| ConfigError::Interval { vrid, source })?;
        if self.primary_address.is_unspecified() {
            return Err(ConfigError::UnspecifiedPrimaryAddress {
                vrid,
                address: self.primary_address,
            });
        }
        if let Some((index, item)) = self
            .tracked
            .iter()
            .enumerate()
            .find(|(_, item)| !(-253..=253).contains(&item.weight))
        {
            return Err(ConfigError::WeightOutOfRange {
                vrid,
                index,
                weight: item.weight,
            });
        }
        if self.preempt_delay > Duration::from_secs(1000) {
            return Err(ConfigError::PreemptDelayTooLong {
                vrid,
                seconds: self.preempt_delay.as_secs(),
            });
        }
        Ok(CheckedConfig {
            vrid,
            version: self.version,
            base_priority: self.priority,
            advert_interval,
            initial_state: self.initial_state,
            preempt: self.preempt,
            preempt_delay: self.preempt_delay,
            accept: self.accept,
            advert_on_lower_priority: self.advert_on_lower_priority,
            advert_before_yielding: self.advert_before_yielding,
            primary_address: self.primary_address,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn base() -> InstanceConfig {
        InstanceConfig::new(56, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
    }

    #[test]
    fn defaults_match_keepalived() {
        let checked = match base().check() {
            Ok(c) => c,
            Err(e) => panic!("defaults rejected: {e}"),
        };
        assert_eq!(checked.version, Version::V2);
        assert_eq!(checked.base_priority, 100);
        assert_eq!(checked.advert_interval, AdvertInterval::ONE_SECOND);
        assert!(checked.preempt);
        assert_eq!(checked.initial_state, InitialState::Backup);
    }

    #[test]
    fn each_invalid_value_is_named_with_what_would_be_right() {
        let mut c = base();
        c.vrid = 0;
        assert_eq!(c.check().err(), Some(ConfigError::VridZero));

        let mut c = base();
        c.priority = 0;
        assert_eq!(c.check().err(), Some(ConfigError::PriorityZero));

        let mut c = base();
        c.advert_interval_cs = 150;
        let err = c.check().err();
        assert_eq!(
            err,
            Some(ConfigError::Interval {
                vrid: 56,
                source: IntervalError::NotWholeSecondsForV2 { centiseconds: 150 }
            })
        );
        assert_eq!(
            err.map(|e| e.to_string()),
            Some(
                "virtual router 56: advertisement interval 150 cs is not a whole number of seconds: \
                 VRRPv2 expects 1..=255 whole seconds"
                    .to_string()
            )
        );

        let mut c = base();
        c.primary_address = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert!(matches!(
            c.check(),
            Err(ConfigError::UnspecifiedPrimaryAddress { vrid: 56, .. })
        ));

        let mut c = base();
        c.tracked = vec![
            TrackedItem {
                weight: 5,
                reverse: false,
                initially_up: true,
            },
            TrackedItem {
                weight: 254,
                reverse: false,
                initially_up: true,
            },
        ];
        assert_eq!(
            c.check().err(),
            Some(ConfigError::WeightOutOfRange {
                vrid: 56,
                index: 1,
                weight: 254
            })
        );

        let mut c = base();
        c.preempt_delay = Duration::from_secs(1001);
        assert_eq!(
            c.check().err(),
            Some(ConfigError::PreemptDelayTooLong {
                vrid: 56,
                seconds: 1001
            })
        );
    }
}
