//! `vrrp_strict` / `strict_mode`: keepalived's strict RFC compliance,
//! applied to one finished instance as keepalived's
//! `vrrp_complete_instance` applies it.
//!
//! Where keepalived refuses the instance (unicast peers, no virtual
//! address) this is an error; where it resets a setting and carries on
//! (authentication, preempt_delay, accept under VRRPv2, a MASTER state
//! without priority 255, lower-priority GARP repeats, answers to
//! lower-priority adverts, `higher_prio_send_advert`) this resets it with a
//! warning, so `--dump-config` shows what will actually run.

use std::time::Duration;

use super::diagnostic::{Diagnostics, Position};
use super::model::{InitialState, Version, VrrpInstance};

/// Address owner priority (RFC 5798 §5.2.4).
const OWNER: u8 = 255;

/// Where the settings strict mode may reject were written; `None` when
/// the instance did not write them (a default or a global value).
#[derive(Debug, Default)]
pub(super) struct StrictPositions {
    pub state: Option<Position>,
    pub accept: Option<Position>,
    pub preempt_delay: Option<Position>,
    pub unicast_peer: Option<Position>,
    pub lower_prio_delay: Option<Position>,
    pub lower_prio_repeat: Option<Position>,
    pub lower_prio_no_advert: Option<Position>,
    pub higher_prio_send_advert: Option<Position>,
}

/// keepalived's default accept mode: on, except in strict mode for a
/// router that is not the address owner (RFC 5798's default is off).
pub(super) fn default_accept(strict: bool, priority: u8) -> bool {
    priority == OWNER || !strict
}

/// Applies strict mode to `instance` (nothing when it is not strict).
pub(super) fn enforce(instance: &mut VrrpInstance, at: &StrictPositions, diags: &mut Diagnostics) {
    if !instance.strict_mode {
        return;
    }
    let name = instance.name.clone();
    let whole = instance.positions.name.clone();
    let owner = instance.priority == OWNER;

    if let Some(state_at) = &at.state
        && (instance.state == InitialState::Master) != owner
    {
        let state = if owner {
            InitialState::Master
        } else {
            InitialState::Backup
        };
        diags.warning(
            state_at,
            format!(
                "vrrp_instance {name}: strict mode: state MASTER must match being address owner (priority 255); using state {}",
                if owner { "MASTER" } else { "BACKUP" }
            ),
        );
        instance.state = state;
    }

    if instance.authentication.take().is_some() {
        let auth_at = instance.positions.authentication.as_ref().unwrap_or(&whole);
        diags.warning(
            auth_at,
            format!(
                "vrrp_instance {name}: strict mode does not support authentication; authentication ignored"
            ),
        );
    }

    if !instance.unicast_peer.is_empty() {
        diags.error(
            at.unicast_peer.as_ref().unwrap_or(&whole),
            format!(
                "vrrp_instance {name}: unicast peers are not supported in strict mode; remove unicast_peer or vrrp_strict/strict_mode"
            ),
        );
    }

    if !instance.preempt_delay.is_zero() {
        diags.warning(
            at.preempt_delay.as_ref().unwrap_or(&whole),
            format!(
                "vrrp_instance {name}: preempt_delay is incompatible with strict mode; using 0"
            ),
        );
        instance.preempt_delay = Duration::ZERO;
    }

    if instance.accept && !owner && instance.version == Version::V2 {
        // Only an explicit `accept` gets here: the default is off.
        diags.warning(
            at.accept.as_ref().unwrap_or(&whole),
            format!(
                "vrrp_instance {name}: accept mode for VRRP version 2 does not comply with RFC 3768 in strict mode; using no_accept"
            ),
        );
        instance.accept = false;
    }

    // Strict mode sends no extra GARPs after a lower-priority advert: an
    // instance's own non-zero value is reset loudly, the global one quietly,
    // as keepalived does.
    let garp = &mut instance.garp;
    if let Some(delay_at) = &at.lower_prio_delay
        && !garp.lower_prio_delay.is_zero()
    {
        diags.warning(
            delay_at,
            format!(
                "vrrp_instance {name}: strict mode requires no lower-priority GARP delay; using 0"
            ),
        );
    }
    if let Some(repeat_at) = &at.lower_prio_repeat
        && garp.lower_prio_repeat != 0
    {
        diags.warning(
            repeat_at,
            format!(
                "vrrp_instance {name}: strict mode requires no lower-priority GARP repeats; using 0"
            ),
        );
    }
    garp.lower_prio_delay = Duration::ZERO;
    garp.lower_prio_repeat = 0;

    // Nor does it answer a lower-priority advert, or send one as it
    // yields; again loudly only for the instance's own setting.
    if let Some(at) = &at.lower_prio_no_advert
        && !instance.lower_prio_no_advert
    {
        diags.warning(
            at,
            format!(
                "vrrp_instance {name}: strict mode requires lower_prio_no_advert; a lower-priority advert gets no answer"
            ),
        );
    }
    instance.lower_prio_no_advert = true;
    if let Some(at) = &at.higher_prio_send_advert
        && instance.higher_prio_send_advert
    {
        diags.warning(
            at,
            format!(
                "vrrp_instance {name}: strict mode requires higher_prio_send_advert to be off; no advert is sent when yielding"
            ),
        );
    }
    instance.higher_prio_send_advert = false;

    if instance.virtual_ipaddress.is_empty() {
        diags.error(
            &whole,
            format!(
                "vrrp_instance {name}: no virtual address; strict mode requires at least one in virtual_ipaddress"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::model::{InitialState, Version, VrrpInstance};
    use crate::config::{Loaded, parse_str};

    fn load(global: &str, body: &str) -> Result<Loaded, Vec<String>> {
        let text = format!(
            "global_defs {{\n{global}\n}}\nvrrp_instance a {{\n interface eth1\n virtual_router_id 1\n{body}\n}}\n"
        );
        parse_str(&text, "k.conf").map_err(|e| e.errors.iter().map(ToString::to_string).collect())
    }

    fn instance(loaded: &Loaded) -> &VrrpInstance {
        &loaded.config.vrrp_instances[0]
    }

    fn warnings(loaded: &Loaded) -> Vec<String> {
        loaded.warnings.iter().map(ToString::to_string).collect()
    }

    const VIP: &str = " virtual_ipaddress { 192.0.2.1 }";

    #[test]
    fn accept_defaults_on_without_strict_and_off_with_it() {
        let plain = load("", VIP).unwrap();
        assert!(instance(&plain).accept);
        let strict = load(" vrrp_strict", VIP).unwrap();
        assert!(instance(&strict).strict_mode);
        assert!(!instance(&strict).accept);
        // Per instance too, and `vrrp_strict false` is not strict.
        let per_instance = load("", &format!("{VIP}\n strict_mode")).unwrap();
        assert!(!instance(&per_instance).accept);
        let off = load(" vrrp_strict false", VIP).unwrap();
        assert!(!instance(&off).strict_mode && instance(&off).accept);
    }

    #[test]
    fn the_address_owner_accepts_even_in_strict_mode() {
        let owner = load(" vrrp_strict", &format!("{VIP}\n priority 255")).unwrap();
        assert!(instance(&owner).accept);
    }

    #[test]
    fn explicit_accept_is_kept_under_v3_and_reset_under_v2() {
        let v3 = load(" vrrp_strict\n vrrp_version 3", &format!("{VIP}\n accept")).unwrap();
        assert!(instance(&v3).accept);
        assert!(warnings(&v3).is_empty(), "{:?}", warnings(&v3));
        let v2 = load(" vrrp_strict", &format!("{VIP}\n accept")).unwrap();
        assert!(!instance(&v2).accept);
        assert_eq!(
            warnings(&v2),
            [
                "k.conf:8:2: vrrp_instance a: accept mode for VRRP version 2 does not comply with RFC 3768 in strict mode; using no_accept"
            ]
        );
    }

    #[test]
    fn explicit_no_accept_without_strict_is_kept() {
        let loaded = load("", &format!("{VIP}\n no_accept")).unwrap();
        assert!(!instance(&loaded).accept);
    }

    #[test]
    fn unicast_peers_are_refused_with_their_position() {
        let errors = load(
            " vrrp_strict",
            &format!("{VIP}\n unicast_peer {{\n  192.0.2.2\n }}"),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "k.conf:8:2: vrrp_instance a: unicast peers are not supported in strict mode; remove unicast_peer or vrrp_strict/strict_mode"
            ]
        );
    }

    #[test]
    fn no_virtual_address_is_refused() {
        let errors = load(" vrrp_strict", "").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("strict mode requires at least one"),
            "{errors:?}"
        );
    }

    #[test]
    fn authentication_is_dropped_with_a_warning() {
        let loaded = load(
            " vrrp_strict",
            &format!("{VIP}\n authentication {{\n  auth_type PASS\n  auth_pass secret\n }}"),
        )
        .unwrap();
        assert_eq!(instance(&loaded).authentication, None);
        assert_eq!(
            warnings(&loaded),
            [
                "k.conf:8:2: vrrp_instance a: strict mode does not support authentication; authentication ignored"
            ]
        );
    }

    #[test]
    fn preempt_delay_and_a_non_owner_master_state_are_reset() {
        let loaded = load(
            " vrrp_strict",
            &format!("{VIP}\n state MASTER\n preempt_delay 5\n priority 100"),
        )
        .unwrap();
        let a = instance(&loaded);
        assert_eq!(a.state, InitialState::Backup);
        assert_eq!(a.preempt_delay, Duration::ZERO);
        assert_eq!(
            warnings(&loaded),
            [
                "k.conf:8:8: vrrp_instance a: strict mode: state MASTER must match being address owner (priority 255); using state BACKUP",
                "k.conf:9:16: vrrp_instance a: preempt_delay is incompatible with strict mode; using 0",
            ]
        );
        let owner = load(
            " vrrp_strict",
            &format!("{VIP}\n state MASTER\n priority 255"),
        )
        .unwrap();
        assert_eq!(instance(&owner).state, InitialState::Master);
        assert!(warnings(&owner).is_empty(), "{:?}", warnings(&owner));
    }

    #[test]
    fn lower_priority_garps_are_zero_and_an_explicit_value_is_reset_loudly() {
        let global = load(" vrrp_strict\n vrrp_garp_lower_prio_repeat 3", VIP).unwrap();
        assert_eq!(instance(&global).garp.lower_prio_repeat, 0);
        assert_eq!(instance(&global).garp.lower_prio_delay, Duration::ZERO);
        let own = load(" vrrp_strict", &format!("{VIP}\n garp_lower_prio_repeat 3")).unwrap();
        assert_eq!(instance(&own).garp.lower_prio_repeat, 0);
        let warnings = warnings(&own);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("strict mode requires no lower-priority GARP repeats")),
            "{warnings:?}"
        );
    }

    #[test]
    fn strict_mode_never_answers_lower_priority_nor_advertises_when_yielding() {
        let plain = load("", VIP).unwrap();
        assert!(!instance(&plain).lower_prio_no_advert);
        assert!(!instance(&plain).higher_prio_send_advert);
        // Global defaults are switched off quietly.
        let global = load(
            " vrrp_strict\n vrrp_lower_prio_no_advert false\n vrrp_higher_prio_send_advert",
            VIP,
        )
        .unwrap();
        assert!(instance(&global).lower_prio_no_advert);
        assert!(!instance(&global).higher_prio_send_advert);
        assert!(warnings(&global).is_empty(), "{:?}", warnings(&global));
        // The instance's own settings are reset loudly, where written.
        let own = load(
            " vrrp_strict",
            &format!("{VIP}\n lower_prio_no_advert false\n higher_prio_send_advert true"),
        )
        .unwrap();
        assert!(instance(&own).lower_prio_no_advert);
        assert!(!instance(&own).higher_prio_send_advert);
        assert_eq!(
            warnings(&own),
            [
                "k.conf:8:2: vrrp_instance a: strict mode requires lower_prio_no_advert; a lower-priority advert gets no answer",
                "k.conf:9:2: vrrp_instance a: strict mode requires higher_prio_send_advert to be off; no advert is sent when yielding",
            ]
        );
        // Values strict mode allows anyway say nothing.
        let fine = load(
            " vrrp_strict",
            &format!("{VIP}\n lower_prio_no_advert\n higher_prio_send_advert false"),
        )
        .unwrap();
        assert!(warnings(&fine).is_empty(), "{:?}", warnings(&fine));
    }

    #[test]
    fn split_brain_keywords_are_read_globally_and_per_instance() {
        let global = load(
            " vrrp_lower_prio_no_advert\n vrrp_higher_prio_send_advert true",
            VIP,
        )
        .unwrap();
        assert!(instance(&global).lower_prio_no_advert);
        assert!(instance(&global).higher_prio_send_advert);
        assert!(warnings(&global).is_empty(), "{:?}", warnings(&global));
        let own = load(
            " vrrp_lower_prio_no_advert\n vrrp_higher_prio_send_advert",
            &format!("{VIP}\n lower_prio_no_advert false\n higher_prio_send_advert off"),
        )
        .unwrap();
        assert!(!instance(&own).lower_prio_no_advert);
        assert!(!instance(&own).higher_prio_send_advert);
        let bad = load("", &format!("{VIP}\n lower_prio_no_advert maybe")).unwrap_err();
        assert!(bad.iter().any(|e| e.starts_with("k.conf:8:23:")), "{bad:?}");
    }

    /// keepalived: an instance's lower-priority GARP settings come from
    /// `vrrp_garp_lower_prio_*`, which default to the global
    /// `vrrp_garp_master_*`; the instance's own `garp_master_*` do not
    /// reach them.
    #[test]
    fn lower_priority_garps_default_to_the_global_settings() {
        let plain = load("", VIP).unwrap();
        assert_eq!(instance(&plain).garp.lower_prio_repeat, 5);
        assert_eq!(
            instance(&plain).garp.lower_prio_delay,
            Duration::from_secs(5)
        );
        let master = load(
            " vrrp_garp_master_repeat 2\n vrrp_garp_master_delay 3",
            &format!("{VIP}\n garp_master_repeat 7\n garp_master_delay 9"),
        )
        .unwrap();
        assert_eq!(instance(&master).garp.lower_prio_repeat, 2);
        assert_eq!(
            instance(&master).garp.lower_prio_delay,
            Duration::from_secs(3)
        );
        let lower = load(
            " vrrp_garp_master_repeat 2\n vrrp_garp_lower_prio_repeat 4",
            &format!("{VIP}\n garp_lower_prio_delay 0"),
        )
        .unwrap();
        assert_eq!(instance(&lower).garp.lower_prio_repeat, 4);
        assert_eq!(instance(&lower).garp.lower_prio_delay, Duration::ZERO);
        assert!(warnings(&lower).is_empty(), "{:?}", warnings(&lower));
    }

    #[test]
    fn ipv6_with_version_2_runs_version_3() {
        let loaded = load(
            " vrrp_strict",
            " version 2\n virtual_ipaddress { 2001:db8::1 }",
        )
        .unwrap();
        assert_eq!(instance(&loaded).version, Version::V3);
    }
}
