//! Tracked scripts, interfaces and files: priority weights and faults,
//! with keepalived's semantics.
//!
//! An item is *failing* when it is down, or, with `reverse`, when it is up.
//! - weight 0: a failing item puts the instance in FAULT;
//! - weight > 0: the weight is added while the item is not failing;
//! - weight < 0: the weight is added (priority lowered) while it is failing.
//!
//! Effective priority = base + sum of applying weights, clamped to 1..=254;
//! an address owner (base 255) is never adjusted.

/// One tracked object as the instance sees it; the daemon decides what the
/// object is (script, interface, file, BFD) and reports its state by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackedItem {
    /// keepalived's `weight`, -253..=253; 0 means "fault when failing".
    pub weight: i32,
    /// keepalived's `reverse`: the item fails while it is up.
    pub reverse: bool,
    /// Whether the item is up before its first report.
    pub initially_up: bool,
}

/// A tracked-item index that the instance's configuration does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "tracked item #{index} does not exist: this instance tracks {count} item(s), indices 0..{count}"
)]
pub struct UnknownTrackedItem {
    /// The index that was reported.
    pub index: usize,
    /// How many items the instance tracks.
    pub count: usize,
}

/// The current state of all tracked items of one instance, kept as running
/// sums so an update costs O(1) however many items there are.
#[derive(Debug, Clone)]
pub(super) struct Tracking {
    items: Vec<(TrackedItem, bool)>,
    failing_zero_weight: usize,
    adjustment: i64,
}

impl TrackedItem {
    fn failing(&self, up: bool) -> bool {
        up == self.reverse
    }

    fn contribution(&self, up: bool) -> i64 {
        let failing = self.failing(up);
        match self.weight {
            w if w > 0 && !failing => i64::from(w),
            w if w < 0 && failing => i64::from(w),
            _ => 0,
        }
    }

    fn faults(&self, up: bool) -> bool {
        self.weight == 0 && self.failing(up)
    }
}

impl Tracking {
    pub(super) fn new(items: &[TrackedItem]) -> Self {
        let mut tracking = Tracking {
            items: items
                .iter()
                .map(|item| (*item, item.initially_up))
                .collect(),
            failing_zero_weight: 0,
            adjustment: 0,
        };
        for (item, up) in &tracking.items {
            tracking.adjustment += item.contribution(*up);
            if item.faults(*up) {
                tracking.failing_zero_weight += 1;
            }
        }
        tracking
    }

    /// Records a new state for item `index`.
    pub(super) fn set(&mut self, index: usize, up: bool) -> Result<(), UnknownTrackedItem> {
        let count = self.items.len();
        let (item, current) = self
            .items
            .get_mut(index)
            .ok_or(UnknownTrackedItem { index, count })?;
        if *current == up {
            return Ok(());
        }
        self.adjustment += item.contribution(up) - item.contribution(*current);
        match (item.faults(*current), item.faults(up)) {
            (false, true) => self.failing_zero_weight += 1,
            (true, false) => self.failing_zero_weight = self.failing_zero_weight.saturating_sub(1),
            _ => {}
        }
        *current = up;
        Ok(())
    }

    /// Whether a weight-0 item is failing.
    pub(super) fn in_fault(&self) -> bool {
        self.failing_zero_weight > 0
    }

    /// The priority the instance advertises, given its configured base.
    pub(super) fn effective_priority(&self, base: u8) -> u8 {
        if base == 255 {
            return 255;
        }
        let total = (i64::from(base) + self.adjustment).clamp(1, 254);
        u8::try_from(total).unwrap_or(254)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(weight: i32, reverse: bool, initially_up: bool) -> TrackedItem {
        TrackedItem {
            weight,
            reverse,
            initially_up,
        }
    }

    #[test]
    fn positive_weight_applies_while_up_negative_while_down() {
        let mut t = Tracking::new(&[item(10, false, true), item(-30, false, true)]);
        assert_eq!(t.effective_priority(100), 110);
        assert_eq!(t.set(0, false), Ok(()));
        assert_eq!(t.effective_priority(100), 100);
        assert_eq!(t.set(1, false), Ok(()));
        assert_eq!(t.effective_priority(100), 70);
        assert!(!t.in_fault());
    }

    #[test]
    fn reverse_inverts_which_state_fails() {
        let mut t = Tracking::new(&[item(-20, true, false)]);
        assert_eq!(t.effective_priority(100), 100);
        assert_eq!(t.set(0, true), Ok(()));
        assert_eq!(t.effective_priority(100), 80);
    }

    #[test]
    fn weight_zero_failing_means_fault_and_recovers() {
        let mut t = Tracking::new(&[item(0, false, true), item(0, false, false)]);
        assert!(t.in_fault());
        assert_eq!(t.set(1, true), Ok(()));
        assert!(!t.in_fault());
        assert_eq!(t.set(0, false), Ok(()));
        assert!(t.in_fault());
        // Repeating a report changes nothing.
        assert_eq!(t.set(0, false), Ok(()));
        assert_eq!(t.set(0, true), Ok(()));
        assert!(!t.in_fault());
    }

    #[test]
    fn effective_priority_clamps_to_1_through_254() {
        let t = Tracking::new(&[item(253, false, true), item(100, false, true)]);
        assert_eq!(t.effective_priority(200), 254);
        let t = Tracking::new(&[item(-253, false, false), item(-100, false, false)]);
        assert_eq!(t.effective_priority(50), 1);
    }

    #[test]
    fn address_owner_priority_is_never_adjusted() {
        let t = Tracking::new(&[item(-50, false, false)]);
        assert_eq!(t.effective_priority(255), 255);
    }

    #[test]
    fn unknown_index_is_an_error_not_a_panic() {
        let mut t = Tracking::new(&[item(5, false, true)]);
        assert_eq!(
            t.set(3, true),
            Err(UnknownTrackedItem { index: 3, count: 1 })
        );
        assert_eq!(
            UnknownTrackedItem { index: 3, count: 1 }.to_string(),
            "tracked item #3 does not exist: this instance tracks 1 item(s), indices 0..1"
        );
    }
}
