//! keepalived's `vrrp_sync_group`: instances that change state together.
//!
//! Rules (as keepalived 2.x applies them):
//! - any member in FAULT (its own interface or weight-0 tracking) puts every
//!   member in FAULT; they leave it together, as backups, once no member
//!   has a fault of its own;
//! - a member may go from Backup to Master on its own Master_Down_Timer only
//!   if every other member wants master too (is master, or has timed out
//!   itself); otherwise it stays Backup and re-arms a full
//!   Master_Down_Interval — keepalived "prefers backup to avoid thrashing";
//! - a member that becomes master pulls the other backups to master;
//! - a member that drops from master to backup pushes the other masters to
//!   backup (without a priority-0 advert, as keepalived).

use super::instance::{Action, Input, InputError, Instance, ReconfigureError, State};
use super::instance_config::InstanceConfig;
use super::time::Timestamp;

/// An action for one member of a [`SyncGroup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberAction {
    /// Index of the member in the group (order given to [`SyncGroup::new`]).
    pub member: usize,
    /// What to do for it.
    pub action: Action,
}

/// A mistake in using a [`SyncGroup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncGroupError {
    /// A group without members cannot do anything.
    #[error("a vrrp_sync_group needs at least one member instance, got none")]
    Empty,
    /// The member index is out of range.
    #[error("sync group member #{member} does not exist: the group has members 0..{count}")]
    UnknownMember {
        /// The index given.
        member: usize,
        /// How many members exist.
        count: usize,
    },
    /// The member rejected the input.
    #[error("sync group member #{member}: {source}")]
    Input {
        /// The index given.
        member: usize,
        /// What the member rejected.
        source: InputError,
    },
    /// The member refused its new configuration; nothing changed.
    #[error("sync group member #{member}: {source}")]
    Reconfigure {
        /// The index given.
        member: usize,
        /// Why the member refused it.
        source: ReconfigureError,
    },
}

/// Coordinator over the instances of one sync group; sans-IO like
/// [`Instance`]. Inputs go to one member; actions come back tagged with the
/// member they are for.
#[derive(Debug, Clone)]
pub struct SyncGroup {
    members: Vec<Instance>,
    scratch: Vec<Action>,
}

impl SyncGroup {
    /// A group of these instances (normally all still in Initialize).
    pub fn new(members: Vec<Instance>) -> Result<Self, SyncGroupError> {
        if members.is_empty() {
            return Err(SyncGroupError::Empty);
        }
        Ok(SyncGroup {
            members,
            scratch: Vec::new(),
        })
    }

    /// The members, in the order given.
    pub fn members(&self) -> &[Instance] {
        &self.members
    }

    /// One member.
    pub fn member(&self, member: usize) -> Option<&Instance> {
        self.members.get(member)
    }

    /// The earliest deadline of any member.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.members
            .iter()
            .filter_map(Instance::next_deadline)
            .min()
    }

    /// Feeds one input to one member, then applies the group rules.
    pub fn handle(
        &mut self,
        member: usize,
        input: Input,
        now: Timestamp,
    ) -> Result<Vec<MemberAction>, SyncGroupError> {
        let mut out = Vec::new();
        self.handle_into(member, input, now, &mut out)?;
        Ok(out)
    }

    /// Like [`SyncGroup::handle`], appending to a caller-owned buffer.
    pub fn handle_into(
        &mut self,
        member: usize,
        input: Input,
        now: Timestamp,
        out: &mut Vec<MemberAction>,
    ) -> Result<(), SyncGroupError> {
        self.apply_to(member, now, out, |instance, actions| {
            instance
                .handle_into(input, now, actions)
                .map_err(|source| SyncGroupError::Input { member, source })
        })
    }

    /// Reload of one member ([`Instance::reconfigure_into`]), then the group
    /// rules as after any input: a member put in FAULT by its new tracking
    /// takes the group along, an owner that became master pulls the others.
    /// On an error nothing changes.
    pub fn reconfigure(
        &mut self,
        member: usize,
        config: &InstanceConfig,
        now: Timestamp,
    ) -> Result<Vec<MemberAction>, SyncGroupError> {
        let mut out = Vec::new();
        self.apply_to(member, now, &mut out, |instance, actions| {
            instance
                .reconfigure_into(config, now, actions)
                .map_err(|source| SyncGroupError::Reconfigure { member, source })
        })?;
        Ok(out)
    }

    /// Runs `f` on one member, tags its actions, then applies the group
    /// rules to the state change it caused.
    fn apply_to(
        &mut self,
        member: usize,
        now: Timestamp,
        out: &mut Vec<MemberAction>,
        f: impl FnOnce(&mut Instance, &mut Vec<Action>) -> Result<(), SyncGroupError>,
    ) -> Result<(), SyncGroupError> {
        let count = self.members.len();
        if member >= count {
            return Err(SyncGroupError::UnknownMember { member, count });
        }
        self.refresh_hold(member);
        let before = self.state_of(member);
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let result = match self.members.get_mut(member) {
            Some(instance) => f(instance, &mut scratch),
            None => Ok(()),
        };
        out.extend(
            scratch
                .drain(..)
                .map(|action| MemberAction { member, action }),
        );
        self.scratch = scratch;
        result?;
        self.reconcile(member, before, now, out);
        Ok(())
    }

    /// [`Input::Start`] for every member.
    pub fn start(&mut self, now: Timestamp) -> Vec<MemberAction> {
        self.for_each_member(Input::Start, now)
    }

    /// A start after a daemon restart: [`Input::Resume`] for the members
    /// `resume` names, [`Input::Start`] for the others. A member that
    /// resumes as master pulls the group along, as any new master does.
    pub fn start_resuming(&mut self, now: Timestamp, resume: &[bool]) -> Vec<MemberAction> {
        let mut out = Vec::new();
        for member in 0..self.members.len() {
            let input = if resume.get(member).copied().unwrap_or(false) {
                Input::Resume
            } else {
                Input::Start
            };
            // Cannot fail: the index is in range and neither input errs.
            let _ = self.handle_into(member, input, now, &mut out);
        }
        // A member without a heartbeat of its own (added by the new
        // configuration) started as backup: the group is master.
        if (0..self.members.len()).any(|index| self.state_of(index) == State::Master) {
            for index in 0..self.members.len() {
                self.with_member(index, &mut out, |instance, actions| {
                    instance.force_master(now, actions)
                });
            }
        }
        out
    }

    /// [`Input::Shutdown`] for every member.
    pub fn shutdown(&mut self, now: Timestamp) -> Vec<MemberAction> {
        self.for_each_member(Input::Shutdown, now)
    }

    /// [`Input::TimerExpired`] for every member whose deadline is due.
    pub fn expire_timers(&mut self, now: Timestamp) -> Vec<MemberAction> {
        let mut out = Vec::new();
        for member in 0..self.members.len() {
            let due = self
                .member(member)
                .and_then(Instance::next_deadline)
                .is_some_and(|deadline| deadline <= now);
            if due {
                // Cannot fail: the index is in range and TimerExpired never errs.
                let _ = self.handle_into(member, Input::TimerExpired, now, &mut out);
            }
        }
        out
    }

    fn for_each_member(&mut self, input: Input, now: Timestamp) -> Vec<MemberAction> {
        let mut out = Vec::new();
        for member in 0..self.members.len() {
            // Cannot fail: the index is in range and Start/Shutdown never err.
            let _ = self.handle_into(member, input, now, &mut out);
        }
        out
    }

    fn state_of(&self, member: usize) -> State {
        self.member(member)
            .map_or(State::Initialize, Instance::state)
    }

    /// keepalived's `vrrp_sync_can_goto_master`: only if all others want it.
    fn refresh_hold(&mut self, member: usize) {
        let others_all_want = self
            .members
            .iter()
            .enumerate()
            .all(|(index, other)| index == member || other.wants_master());
        if let Some(instance) = self.members.get_mut(member) {
            instance.set_sync_hold(!others_all_want);
        }
    }

    fn reconcile(
        &mut self,
        member: usize,
        before: State,
        now: Timestamp,
        out: &mut Vec<MemberAction>,
    ) {
        let mut before_all: Vec<State> = (0..self.members.len())
            .map(|index| self.state_of(index))
            .collect();
        if let Some(state) = before_all.get_mut(member) {
            *state = before;
        }
        let group_fault = self.members.iter().any(Instance::has_own_fault);
        for index in 0..self.members.len() {
            self.refresh_hold(index);
            self.with_member(index, out, |instance, actions| {
                instance.set_group_fault(group_fault, now, actions);
            });
        }
        // Whichever member moved, by its own input or by leaving a group
        // fault (an owner becomes master at once), the others follow it.
        let moved = (0..self.members.len()).find_map(|index| {
            let (was, is) = (before_all[index], self.state_of(index));
            let pull: Option<fn(&mut Instance, Timestamp, &mut Vec<Action>)> = match (was, is) {
                (State::Master, State::Master) => None,
                (_, State::Master) => Some(Instance::force_master),
                (State::Master, State::Backup) => Some(Instance::force_backup),
                _ => None,
            };
            pull.map(|pull| (index, pull))
        });
        if let Some((leader, apply)) = moved {
            tracing::debug!(member = leader, "sync group follows member");
            for index in (0..self.members.len()).filter(|index| *index != leader) {
                self.with_member(index, out, |instance, actions| {
                    apply(instance, now, actions)
                });
            }
        }
    }

    fn with_member(
        &mut self,
        member: usize,
        out: &mut Vec<MemberAction>,
        f: impl FnOnce(&mut Instance, &mut Vec<Action>),
    ) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        if let Some(instance) = self.members.get_mut(member) {
            f(instance, &mut scratch);
        }
        out.extend(
            scratch
                .drain(..)
                .map(|action| MemberAction { member, action }),
        );
        self.scratch = scratch;
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::vrrp::election::instance::ReconfigureError;
    use crate::vrrp::election::instance_config::ConfigError;
    use crate::vrrp::election::{Advert, Reason, TrackedItem};
    use crate::vrrp::{ChecksumForm, Version};

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_nanos(n * 1_000_000)
    }

    fn member_config(vrid: u8, priority: u8) -> InstanceConfig {
        let mut c = InstanceConfig::new(vrid, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        c.version = Version::V3;
        c.priority = priority;
        c
    }

    fn member(vrid: u8, priority: u8) -> Instance {
        match Instance::new(&member_config(vrid, priority)) {
            Ok(i) => i,
            Err(e) => panic!("bad test config: {e}"),
        }
    }

    fn group(members: Vec<Instance>) -> SyncGroup {
        match SyncGroup::new(members) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    fn feed(g: &mut SyncGroup, member: usize, input: Input, now: Timestamp) -> Vec<MemberAction> {
        match g.handle(member, input, now) {
            Ok(actions) => actions,
            Err(e) => panic!("{e}"),
        }
    }

    fn advert(priority: u8) -> Input {
        Input::Advert(Advert {
            priority,
            source: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            interval_cs: 100,
            version: Version::V3,
            checksum: ChecksumForm::WithPseudoHeader,
        })
    }

    fn changes(actions: &[MemberAction]) -> Vec<(usize, State, State, Reason)> {
        actions
            .iter()
            .filter_map(|a| match a.action {
                Action::StateChanged { from, to, reason } => Some((a.member, from, to, reason)),
                _ => None,
            })
            .collect()
    }

    fn states(g: &SyncGroup) -> Vec<State> {
        g.members().iter().map(Instance::state).collect()
    }

    /// Both members start and time out with no peers: both master.
    fn both_master() -> SyncGroup {
        let mut g = group(vec![member(56, 100), member(58, 100)]);
        g.start(ms(0));
        let due = g.next_deadline().unwrap_or(Timestamp::ZERO);
        g.expire_timers(due);
        assert_eq!(states(&g), vec![State::Master, State::Master]);
        g
    }

    #[test]
    fn keepalived_sync_group_one_member_fault_faults_all_and_recovers_together() {
        let mut g = both_master();
        let actions = feed(&mut g, 0, Input::InterfaceDown, ms(5_000));
        assert_eq!(
            changes(&actions),
            vec![
                (0, State::Master, State::Fault, Reason::InterfaceDown),
                (1, State::Master, State::Fault, Reason::SyncGroup),
            ]
        );
        // The pulled member also announces priority 0 and drops its VIPs.
        assert!(
            actions.iter().any(
                |a| a.member == 1 && matches!(a.action, Action::SendAdvert { priority: 0, .. })
            )
        );
        assert!(
            actions
                .iter()
                .any(|a| a.member == 1 && a.action == Action::RemoveVips)
        );

        let actions = feed(&mut g, 0, Input::InterfaceUp, ms(6_000));
        assert_eq!(
            changes(&actions),
            vec![
                (0, State::Fault, State::Backup, Reason::SyncGroup),
                (1, State::Fault, State::Backup, Reason::SyncGroup),
            ]
        );
    }

    #[test]
    fn keepalived_sync_group_member_waits_until_all_want_master_then_pulls_all() {
        let mut g = group(vec![member(56, 100), member(58, 100)]);
        g.start(ms(0));
        // Member 1 still hears its master; member 0's master has gone quiet.
        feed(&mut g, 1, advert(200), ms(2_000));
        let due0 = g
            .member(0)
            .and_then(Instance::next_deadline)
            .unwrap_or(Timestamp::ZERO);
        let actions = feed(&mut g, 0, Input::TimerExpired, due0);
        assert_eq!(changes(&actions), vec![]);
        assert_eq!(states(&g), vec![State::Backup, State::Backup]);
        let rearmed = due0.saturating_add(
            g.member(0)
                .map(Instance::master_down_interval)
                .unwrap_or_default(),
        );
        assert_eq!(actions, vec![]);
        assert_eq!(g.member(0).and_then(Instance::next_deadline), Some(rearmed));

        // Member 1 times out as well: it may go, and pulls member 0 along.
        let due1 = g
            .member(1)
            .and_then(Instance::next_deadline)
            .unwrap_or(Timestamp::ZERO);
        let actions = feed(&mut g, 1, Input::TimerExpired, due1);
        assert_eq!(
            changes(&actions),
            vec![
                (1, State::Backup, State::Master, Reason::MasterDown),
                (0, State::Backup, State::Master, Reason::SyncGroup),
            ]
        );
    }

    #[test]
    fn keepalived_sync_group_member_dropping_to_backup_pushes_all_to_backup() {
        let mut g = both_master();
        let actions = feed(&mut g, 1, advert(200), ms(5_000));
        assert_eq!(
            changes(&actions),
            vec![
                (
                    1,
                    State::Master,
                    State::Backup,
                    Reason::HigherPriorityAdvert
                ),
                (0, State::Master, State::Backup, Reason::SyncGroup),
            ]
        );
        assert!(
            actions
                .iter()
                .any(|a| a.member == 0 && a.action == Action::RemoveVips)
        );
        // No priority-0 advert when pushed to backup.
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a.action, Action::SendAdvert { priority: 0, .. }))
        );
    }

    // A reload that puts one member in FAULT (a weight-0 tracked item that
    // is down) takes the whole group to FAULT, as a tracked report does.
    #[test]
    fn keepalived_sync_group_member_reconfigured_into_fault_pulls_the_group() {
        let mut g = both_master();
        let mut c = member_config(56, 100);
        c.tracked = vec![TrackedItem {
            weight: 0,
            reverse: false,
            initially_up: false,
        }];
        let actions = match g.reconfigure(0, &c, ms(5_000)) {
            Ok(actions) => actions,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            changes(&actions),
            vec![
                (0, State::Master, State::Fault, Reason::TrackedFault),
                (1, State::Master, State::Fault, Reason::SyncGroup),
            ]
        );
        assert!(
            actions
                .iter()
                .any(|a| a.member == 1 && a.action == Action::RemoveVips)
        );
        assert_eq!(g.next_deadline(), None);

        // Reloaded without the item: the group leaves FAULT together (as
        // after InterfaceUp, the group lifts it, hence SyncGroup for both).
        let actions = match g.reconfigure(0, &member_config(56, 100), ms(6_000)) {
            Ok(actions) => actions,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            changes(&actions),
            vec![
                (0, State::Fault, State::Backup, Reason::SyncGroup),
                (1, State::Fault, State::Backup, Reason::SyncGroup),
            ]
        );
    }

    // An unchanged reload of a master group member touches nothing, and a
    // member reloaded as the address owner pulls its backups to master.
    #[test]
    fn keepalived_sync_group_reconfigure_keeps_masters_and_owner_pulls_the_group() {
        let mut g = both_master();
        let deadline = g.next_deadline();
        assert_eq!(
            g.reconfigure(1, &member_config(58, 100), ms(5_000)),
            Ok(vec![])
        );
        assert_eq!(g.next_deadline(), deadline);
        assert_eq!(states(&g), vec![State::Master, State::Master]);

        let mut g = group(vec![member(56, 100), member(58, 100)]);
        g.start(ms(0));
        let actions = match g.reconfigure(0, &member_config(56, 255), ms(100)) {
            Ok(actions) => actions,
            Err(e) => panic!("{e}"),
        };
        // Member 1 has not timed out yet, so the owner is held in Backup
        // (keepalived's vrrp_sync_can_goto_master) but wants master ...
        assert_eq!(changes(&actions), vec![]);
        assert!(g.member(0).is_some_and(Instance::wants_master));
        // ... and when member 1 times out, both go.
        let due1 = g
            .member(1)
            .and_then(Instance::next_deadline)
            .unwrap_or(Timestamp::ZERO);
        let actions = feed(&mut g, 1, Input::TimerExpired, due1);
        assert_eq!(
            changes(&actions),
            vec![
                (1, State::Backup, State::Master, Reason::MasterDown),
                (0, State::Backup, State::Master, Reason::SyncGroup),
            ]
        );

        // A single-member group is never held: the owner goes at once.
        let mut g = group(vec![member(56, 100)]);
        g.start(ms(0));
        let actions = match g.reconfigure(0, &member_config(56, 255), ms(100)) {
            Ok(actions) => actions,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            changes(&actions),
            vec![(0, State::Backup, State::Master, Reason::AddressOwner)]
        );
    }

    #[test]
    fn sync_group_errors_name_the_problem() {
        assert_eq!(
            SyncGroup::new(Vec::new()).err(),
            Some(SyncGroupError::Empty)
        );
        let mut g = group(vec![member(56, 100)]);
        let err = g.handle(3, Input::Start, ms(0)).err();
        assert_eq!(
            err,
            Some(SyncGroupError::UnknownMember {
                member: 3,
                count: 1
            })
        );
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("sync group member #3 does not exist: the group has members 0..1".to_string())
        );
        assert!(matches!(
            g.handle(0, Input::Tracked { item: 0, up: true }, ms(0)),
            Err(SyncGroupError::Input { member: 0, .. })
        ));
        assert_eq!(
            g.reconfigure(0, &member_config(56, 0), ms(0)),
            Err(SyncGroupError::Reconfigure {
                member: 0,
                source: ReconfigureError::Config(ConfigError::PriorityZero)
            })
        );
        assert!(matches!(
            g.reconfigure(1, &member_config(56, 100), ms(0)),
            Err(SyncGroupError::UnknownMember {
                member: 1,
                count: 1
            })
        ));
    }
}
