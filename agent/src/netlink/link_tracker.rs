//! Turns the kernel's stream of link messages into "this interface is now
//! up/down" events, without any IO, so the rules are testable on their own.
//!
//! What counts as down, as in keepalived: a link is up only when it is
//! administratively up (`IFF_UP`) and the kernel marks it operational
//! (`IFF_RUNNING`, set when there is carrier and the operational state is up
//! or unknown). So "down" is any of: `ip link set dev X down`; no carrier
//! (cable out, or the peer of a veth pair down); a dormant/lower-layer-down
//! operational state; the interface being deleted or renamed away.

use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Up,
    /// `IFF_UP` not set.
    AdminDown,
    /// `IFF_UP` set, `IFF_RUNNING` not: no carrier or not operational.
    NoCarrier,
    /// No interface has this name (deleted, renamed, or never created).
    Absent,
}

/// A watched interface's state changed (or, at start, its current state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// `None` only for an interface that has not existed since watching began.
    pub ifindex: Option<u32>,
    pub name: String,
    pub up: bool,
    pub state: LinkState,
}

/// Which interfaces to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchSet {
    All,
    Names(BTreeSet<String>),
}

impl WatchSet {
    pub fn names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        WatchSet::Names(names.into_iter().map(Into::into).collect())
    }

    fn watches(&self, name: &str) -> bool {
        match self {
            WatchSet::All => true,
            WatchSet::Names(names) => names.contains(name),
        }
    }
}

/// The parts of a link message the tracker needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSnapshot {
    pub ifindex: u32,
    pub name: String,
    pub admin_up: bool,
    pub running: bool,
}

impl LinkSnapshot {
    fn state(&self) -> LinkState {
        match (self.admin_up, self.running) {
            (false, _) => LinkState::AdminDown,
            (true, false) => LinkState::NoCarrier,
            (true, true) => LinkState::Up,
        }
    }
}

#[derive(Debug)]
pub struct LinkTracker {
    watch: WatchSet,
    /// Last state reported per watched name.
    reported: HashMap<String, (Option<u32>, LinkState)>,
    /// Current name of every link, to notice renames and deletions.
    names: HashMap<u32, String>,
}

impl LinkTracker {
    pub fn new(watch: WatchSet) -> Self {
        LinkTracker {
            watch,
            reported: HashMap::new(),
            names: HashMap::new(),
        }
    }

    /// Takes a full list of links (at start, or after lost notifications).
    /// With `report_all`, every watched interface is reported even if its
    /// state did not change; otherwise only changes are.
    pub fn reconcile(&mut self, links: &[LinkSnapshot], report_all: bool) -> Vec<LinkEvent> {
        self.names = links
            .iter()
            .map(|link| (link.ifindex, link.name.clone()))
            .collect();
        let mut events = Vec::new();
        let mut gone: BTreeSet<String> = self.reported.keys().cloned().collect();
        if let WatchSet::Names(names) = &self.watch {
            gone.extend(names.iter().cloned());
        }
        for link in links {
            gone.remove(&link.name);
            if self.watch.watches(&link.name) {
                events.extend(self.record(
                    &link.name,
                    Some(link.ifindex),
                    link.state(),
                    report_all,
                ));
            }
        }
        for name in gone {
            let last_index = self.reported.get(&name).and_then(|(ifindex, _)| *ifindex);
            events.extend(self.record(&name, last_index, LinkState::Absent, report_all));
        }
        events
    }

    /// A link was created or changed (`RTM_NEWLINK`).
    pub fn changed(&mut self, link: &LinkSnapshot) -> Vec<LinkEvent> {
        let mut events = Vec::new();
        if let Some(old_name) = self.names.insert(link.ifindex, link.name.clone())
            && old_name != link.name
        {
            events.extend(self.vanished(&old_name, link.ifindex));
        }
        if self.watch.watches(&link.name) {
            events.extend(self.record(&link.name, Some(link.ifindex), link.state(), false));
        }
        events
    }

    /// A link was deleted (`RTM_DELLINK`).
    pub fn removed(&mut self, ifindex: u32) -> Vec<LinkEvent> {
        match self.names.remove(&ifindex) {
            Some(name) => self.vanished(&name, ifindex).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// `name` no longer belongs to `ifindex`; it is absent unless another
    /// link already took the name.
    fn vanished(&mut self, name: &str, ifindex: u32) -> Option<LinkEvent> {
        let reported_for_this_link = self
            .reported
            .get(name)
            .is_some_and(|(reported_index, _)| *reported_index == Some(ifindex));
        if reported_for_this_link {
            self.record(name, Some(ifindex), LinkState::Absent, false)
        } else {
            None
        }
    }

    fn record(
        &mut self,
        name: &str,
        ifindex: Option<u32>,
        state: LinkState,
        force: bool,
    ) -> Option<LinkEvent> {
        let current = (ifindex, state);
        let previous = self.reported.get(name).copied();
        if previous == Some(current) && !force {
            return None;
        }
        // Watching everything: forget deleted links so ephemeral interfaces
        // do not accumulate; a named watch keeps reporting them as absent.
        if state == LinkState::Absent && self.watch == WatchSet::All {
            self.reported.remove(name);
        } else {
            self.reported.insert(name.to_owned(), current);
        }
        Some(LinkEvent {
            ifindex,
            name: name.to_owned(),
            up: state == LinkState::Up,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ifindex: u32, name: &str, admin_up: bool, running: bool) -> LinkSnapshot {
        LinkSnapshot {
            ifindex,
            name: name.to_owned(),
            admin_up,
            running,
        }
    }

    fn event(ifindex: Option<u32>, name: &str, state: LinkState) -> LinkEvent {
        LinkEvent {
            ifindex,
            name: name.to_owned(),
            up: state == LinkState::Up,
            state,
        }
    }

    #[test]
    fn start_reports_every_watched_name_including_missing_ones() {
        let mut tracker = LinkTracker::new(WatchSet::names(["eth1", "eth2", "eth9"]));
        let events = tracker.reconcile(
            &[
                link(1, "lo", true, true),
                link(2, "eth1", true, true),
                link(3, "eth2", true, false),
            ],
            true,
        );
        assert_eq!(
            events,
            vec![
                event(Some(2), "eth1", LinkState::Up),
                event(Some(3), "eth2", LinkState::NoCarrier),
                event(None, "eth9", LinkState::Absent),
            ]
        );
    }

    #[test]
    fn only_state_changes_are_reported() {
        let mut tracker = LinkTracker::new(WatchSet::names(["eth1"]));
        tracker.reconcile(&[link(2, "eth1", true, true)], true);
        assert_eq!(tracker.changed(&link(2, "eth1", true, true)), vec![]);
        assert_eq!(tracker.changed(&link(7, "other", false, false)), vec![]);
        assert_eq!(
            tracker.changed(&link(2, "eth1", false, false)),
            vec![event(Some(2), "eth1", LinkState::AdminDown)]
        );
        assert_eq!(tracker.changed(&link(2, "eth1", false, false)), vec![]);
        assert_eq!(
            tracker.changed(&link(2, "eth1", true, false)),
            vec![event(Some(2), "eth1", LinkState::NoCarrier)]
        );
        assert_eq!(
            tracker.changed(&link(2, "eth1", true, true)),
            vec![event(Some(2), "eth1", LinkState::Up)]
        );
    }

    #[test]
    fn deletion_and_recreation() {
        let mut tracker = LinkTracker::new(WatchSet::names(["eth1"]));
        tracker.reconcile(&[link(2, "eth1", true, true)], true);
        assert_eq!(
            tracker.removed(2),
            vec![event(Some(2), "eth1", LinkState::Absent)]
        );
        assert_eq!(tracker.removed(2), vec![]);
        assert_eq!(
            tracker.changed(&link(9, "eth1", true, true)),
            vec![event(Some(9), "eth1", LinkState::Up)]
        );
    }

    #[test]
    fn renames_make_the_old_name_absent_and_can_bring_a_watched_name_in() {
        let mut tracker = LinkTracker::new(WatchSet::names(["eth1", "wan"]));
        tracker.reconcile(
            &[link(2, "eth1", true, true), link(3, "tmp", true, true)],
            true,
        );
        assert_eq!(
            tracker.changed(&link(2, "old", true, true)),
            vec![event(Some(2), "eth1", LinkState::Absent)]
        );
        assert_eq!(
            tracker.changed(&link(3, "wan", true, true)),
            vec![event(Some(3), "wan", LinkState::Up)]
        );
        // A rename away from an unwatched name is nobody's business.
        assert_eq!(tracker.changed(&link(3, "wan", true, true)), vec![]);
    }

    #[test]
    fn resync_reports_changes_missed_while_notifications_were_lost() {
        let mut tracker = LinkTracker::new(WatchSet::names(["eth1", "eth2"]));
        tracker.reconcile(
            &[link(2, "eth1", true, true), link(3, "eth2", true, true)],
            true,
        );
        let events = tracker.reconcile(&[link(2, "eth1", true, false)], false);
        assert_eq!(
            events,
            vec![
                event(Some(2), "eth1", LinkState::NoCarrier),
                event(Some(3), "eth2", LinkState::Absent),
            ]
        );
        assert_eq!(
            tracker.reconcile(&[link(2, "eth1", true, false)], false),
            vec![]
        );
    }

    #[test]
    fn watching_everything_forgets_deleted_links() {
        let mut tracker = LinkTracker::new(WatchSet::All);
        assert_eq!(
            tracker.reconcile(&[link(1, "lo", true, true)], true),
            vec![event(Some(1), "lo", LinkState::Up)]
        );
        assert_eq!(
            tracker.changed(&link(5, "veth0", false, false)),
            vec![event(Some(5), "veth0", LinkState::AdminDown)]
        );
        assert_eq!(
            tracker.removed(5),
            vec![event(Some(5), "veth0", LinkState::Absent)]
        );
        assert_eq!(
            tracker.reconcile(&[link(1, "lo", true, true)], false),
            vec![]
        );
    }
}
