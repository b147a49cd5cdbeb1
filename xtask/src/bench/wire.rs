//! What the client's wire shows of a failover: when the old master's last
//! advert left, when the backup's first advert, first gratuitous ARP for
//! the VIP and first echo reply arrived. These split a client gap into the
//! wait both implementations owe RFC 5798 (Master_Down_Interval, from the
//! last advert heard) and the takeover path behind it, independently of
//! either implementation's own log; and timed from the last advert rather
//! than from the fault, they do not depend on the fault's random phase
//! against the advert timer, which spreads client gaps over a whole
//! advert interval.

/// The moments of one failover on the wire, as epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WireMoments {
    /// The old master's last advert before the backup's first.
    pub last_old_advert: f64,
    /// The backup's first advert after the fault.
    pub first_new_advert: f64,
    /// The backup's first ARP announcing the VIP after the fault, if seen.
    pub first_new_garp: Option<f64>,
    /// The first echo reply from the VIP the backup sent after the fault.
    pub first_new_reply: Option<f64>,
}

impl WireMoments {
    /// From the old master's last advert to the backup's first: the
    /// detection wait (≥ Master_Down_Interval without priority 0) plus the
    /// backup's way to its first advert.
    pub fn silence_ms(&self) -> f64 {
        (self.first_new_advert - self.last_old_advert) * 1000.0
    }

    /// From the backup's first advert to its first gratuitous ARP.
    pub fn garp_after_advert_ms(&self) -> Option<f64> {
        self.first_new_garp
            .map(|garp| (garp - self.first_new_advert) * 1000.0)
    }

    /// From the old master's last advert to the backup's first echo reply:
    /// the client's outage without the fault's phase.
    pub fn restored_ms(&self) -> Option<f64> {
        self.first_new_reply
            .map(|reply| (reply - self.last_old_advert) * 1000.0)
    }
}

/// One captured frame of interest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Frame {
    /// A VRRP advert; `from_old_master` tells which router sent it.
    Advert { at: f64, from_old_master: bool },
    /// An ARP frame from the backup whose sender address is the VIP.
    BackupGarp { at: f64 },
    /// An echo reply from the VIP sent by the backup.
    BackupReply { at: f64 },
}

/// Finds the failover's moments among `frames` (in capture order), looking
/// only after `fault_at`; `None` when the backup never advertised.
pub fn moments(frames: &[Frame], fault_at: f64) -> Option<WireMoments> {
    let first_new_advert = frames.iter().find_map(|frame| match *frame {
        Frame::Advert {
            at,
            from_old_master: false,
        } if at >= fault_at => Some(at),
        _ => None,
    })?;
    let last_old_advert = frames
        .iter()
        .filter_map(|frame| match *frame {
            Frame::Advert {
                at,
                from_old_master: true,
            } if at <= first_new_advert => Some(at),
            _ => None,
        })
        .reduce(f64::max)?;
    let first_new_garp = frames.iter().find_map(|frame| match *frame {
        Frame::BackupGarp { at } if at >= fault_at => Some(at),
        _ => None,
    });
    let first_new_reply = frames.iter().find_map(|frame| match *frame {
        Frame::BackupReply { at } if at >= fault_at => Some(at),
        _ => None,
    });
    Some(WireMoments {
        last_old_advert,
        first_new_advert,
        first_new_garp,
        first_new_reply,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old(at: f64) -> Frame {
        Frame::Advert {
            at,
            from_old_master: true,
        }
    }

    fn new(at: f64) -> Frame {
        Frame::Advert {
            at,
            from_old_master: false,
        }
    }

    #[test]
    fn splits_a_failover_into_silence_and_announcement() {
        let frames = [
            old(10.000),
            old(10.010),
            new(10.048),
            Frame::BackupGarp { at: 10.0485 },
            Frame::BackupReply { at: 10.049 },
            new(10.058),
            Frame::BackupGarp { at: 10.060 },
            Frame::BackupReply { at: 10.061 },
        ];
        let found = moments(&frames, 10.012).unwrap();
        assert_eq!(found.last_old_advert, 10.010);
        assert_eq!(found.first_new_advert, 10.048);
        assert!((found.silence_ms() - 38.0).abs() < 1e-6);
        assert!((found.garp_after_advert_ms().unwrap() - 0.5).abs() < 1e-6);
        assert!((found.restored_ms().unwrap() - 39.0).abs() < 1e-6);
    }

    #[test]
    fn ignores_what_came_before_the_fault_and_after_the_first_new_advert() {
        // A backup that advertised during start-up, and an old master that
        // resumed (SIGCONT) after the takeover.
        let frames = [
            new(1.0),
            Frame::BackupGarp { at: 1.0 },
            Frame::BackupReply { at: 1.0 },
            old(2.0),
            new(2.05),
            old(2.3),
        ];
        let found = moments(&frames, 2.001).unwrap();
        assert_eq!(found.last_old_advert, 2.0);
        assert_eq!(found.first_new_advert, 2.05);
        assert_eq!(found.first_new_garp, None);
        assert_eq!(found.restored_ms(), None);
    }

    #[test]
    fn nothing_without_an_advert_from_each_router() {
        assert_eq!(moments(&[old(1.0)], 0.5), None);
        assert_eq!(moments(&[new(1.0)], 0.5), None);
        assert_eq!(moments(&[], 0.5), None);
    }
}
