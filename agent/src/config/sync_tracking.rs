//! `track_script`, `track_interface`, `track_file` and `track_process` in a
//! `vrrp_sync_group`, applied as keepalived's `sync_group_tracking_init`
//! applies them: each item is tracked by every member of the group, as if
//! the member listed it, so a failing item lowers every member's priority
//! (or, at weight 0, puts every member, and through the group the others,
//! in FAULT).
//!
//! Where a member already tracks the same item itself, keepalived keeps one
//! entry: the group's weight replaces the member's unless the member's is 0
//! (unweighted tracking stays unweighted). A member that owns its addresses
//! (priority 255) cannot have weights: keepalived clears the group's
//! weights then, with an error it does not stop on; we warn and do the
//! same.
//!
//! Before that, as keepalived's `vrrp_complete_instance` does, a member of a
//! group without `sync_group_tracking_weight`, and any address owner, loses
//! its own weighted tracking: members at different priorities would no
//! longer fail over together, and an owner's priority never moves. A
//! weighted interface becomes "fault when down" in a group (an owner stops
//! tracking it), a weighted script is dropped, a file at the default weight
//! 1 becomes unweighted and one at any other weight is dropped. Each is a
//! located warning, so `-t` shows what keepalived would have done.
//! `track_process` is not in that list in keepalived: a member or owner
//! keeps its weighted processes (an owner's priority still never moves).

use super::diagnostic::Diagnostics;
use super::model::{Config, TrackRef, VrrpInstance};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Script,
    Interface,
    File,
    Process,
}

impl Kind {
    fn keyword(self) -> &'static str {
        match self {
            Kind::Script => "track_script",
            Kind::Interface => "track_interface",
            Kind::File => "track_file",
            Kind::Process => "track_process",
        }
    }
}

/// The weight a reference ends up with: its own, else the tracked object's
/// (0 for an interface).
fn effective_weight(config: &Config, kind: Kind, reference: &TrackRef) -> i32 {
    reference.weight.unwrap_or_else(|| match kind {
        Kind::Script => config.script(&reference.name).map_or(0, |s| s.weight),
        Kind::File => config.track_file(&reference.name).map_or(0, |f| f.weight),
        Kind::Process => config
            .track_process(&reference.name)
            .map_or(0, |p| p.weight),
        Kind::Interface => 0,
    })
}

/// Why an instance cannot keep weighted tracking of its own, if it cannot.
fn weights_dropped_because(config: &Config, instance: &VrrpInstance) -> Option<String> {
    let group = config
        .vrrp_sync_groups
        .iter()
        .find(|g| !g.tracking_weight && g.group.contains(&instance.name));
    match group {
        Some(group) => Some(format!(
            "it is a member of vrrp_sync_group {} (add sync_group_tracking_weight to the group to keep member weights)",
            group.name
        )),
        None => (instance.priority == 255).then(|| {
            "it is the address owner (priority 255), whose priority never moves".to_owned()
        }),
    }
}

fn drop_member_weights(config: &mut Config, diags: &mut Diagnostics) {
    for index in 0..config.vrrp_instances.len() {
        let Some(reason) = weights_dropped_because(config, &config.vrrp_instances[index]) else {
            continue;
        };
        let in_group = reason.starts_with("it is a member");
        for kind in [Kind::Interface, Kind::Script, Kind::File] {
            let refs = list(&config.vrrp_instances[index], kind).clone();
            let mut kept = Vec::with_capacity(refs.len());
            for mut reference in refs {
                let weight = effective_weight(config, kind, &reference);
                if weight == 0 {
                    kept.push(reference);
                    continue;
                }
                let unweighted = match kind {
                    Kind::Interface => in_group,
                    Kind::Script | Kind::Process => false,
                    Kind::File => weight == 1,
                };
                let outcome = if unweighted {
                    "tracked unweighted instead (fault when it fails)"
                } else {
                    "not tracked"
                };
                diags.warning(
                    &reference.position,
                    format!(
                        "vrrp_instance {}: {} \"{}\" has weight {weight}, which keepalived ignores because {reason}; {outcome}",
                        config.vrrp_instances[index].name,
                        kind.keyword(),
                        reference.name,
                    ),
                );
                if unweighted {
                    reference.weight = Some(0);
                    reference.reverse = false;
                    kept.push(reference);
                }
            }
            *list_mut(&mut config.vrrp_instances[index], kind) = kept;
        }
    }
}

pub fn apply(config: &mut Config, diags: &mut Diagnostics) {
    drop_member_weights(config, diags);
    let groups = config.vrrp_sync_groups.clone();
    for group in &groups {
        let owner = config
            .vrrp_instances
            .iter()
            .find(|i| group.group.contains(&i.name) && i.priority == 255)
            .map(|i| i.name.clone());
        for (kind, refs) in [
            (Kind::Script, &group.track_script),
            (Kind::Interface, &group.track_interface),
            (Kind::File, &group.track_file),
            (Kind::Process, &group.track_process),
        ] {
            for reference in refs {
                let missing = match kind {
                    Kind::Script => config.script(&reference.name).is_none().then(|| {
                        let names: Vec<&str> = config
                            .vrrp_scripts
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect();
                        ("vrrp_script", names.join(", "))
                    }),
                    Kind::File => config.track_file(&reference.name).is_none().then(|| {
                        let names: Vec<&str> =
                            config.track_files.iter().map(|f| f.name.as_str()).collect();
                        ("vrrp_track_file", names.join(", "))
                    }),
                    Kind::Process => config.track_process(&reference.name).is_none().then(|| {
                        let names: Vec<&str> = config
                            .track_processes
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect();
                        ("vrrp_track_process", names.join(", "))
                    }),
                    Kind::Interface => None,
                };
                if let Some((what, names)) = missing {
                    let known = if names.is_empty() {
                        "none is defined".to_owned()
                    } else {
                        format!("defined: {names}")
                    };
                    diags.error(
                        &reference.position,
                        format!(
                            "{} \"{}\" in vrrp_sync_group {} names no {what}; expected the name of a {what} ({known})",
                            kind.keyword(),
                            reference.name,
                            group.name
                        ),
                    );
                    continue;
                }
                let mut applied = reference.clone();
                if let Some(owner) = &owner
                    && effective_weight(config, kind, reference) != 0
                {
                    diags.warning(
                        &reference.position,
                        format!(
                            "{} \"{}\" in vrrp_sync_group {}: member {owner} has priority 255 (address owner), which cannot have weights; tracked with weight 0 as keepalived does",
                            kind.keyword(),
                            reference.name,
                            group.name
                        ),
                    );
                    applied.weight = Some(0);
                }
                let group_weight = effective_weight(config, kind, &applied);
                for member in &group.group {
                    let Some(index) = config.vrrp_instances.iter().position(|i| &i.name == member)
                    else {
                        continue;
                    };
                    let own_weights: Vec<i32> = {
                        let instance = &config.vrrp_instances[index];
                        list(instance, kind)
                            .iter()
                            .map(|r| effective_weight(config, kind, r))
                            .collect()
                    };
                    let instance = &mut config.vrrp_instances[index];
                    let refs = list_mut(instance, kind);
                    match refs.iter().position(|r| r.name == applied.name) {
                        // The member's unweighted entry stays unweighted.
                        Some(at) if own_weights.get(at) == Some(&0) => {}
                        // keepalived's add_vrrp_to_track_process keeps the
                        // member's direction and takes the group's weight.
                        Some(at) if kind == Kind::Process => refs[at].weight = Some(group_weight),
                        Some(at) => {
                            refs[at].weight = Some(group_weight);
                            refs[at].reverse = applied.reverse;
                        }
                        None => refs.push(applied.clone()),
                    }
                }
            }
        }
    }
}

fn list(instance: &VrrpInstance, kind: Kind) -> &Vec<TrackRef> {
    match kind {
        Kind::Script => &instance.track_script,
        Kind::Interface => &instance.track_interface,
        Kind::File => &instance.track_file,
        Kind::Process => &instance.track_process,
    }
}

fn list_mut(instance: &mut VrrpInstance, kind: Kind) -> &mut Vec<TrackRef> {
    match kind {
        Kind::Script => &mut instance.track_script,
        Kind::Interface => &mut instance.track_interface,
        Kind::File => &mut instance.track_file,
        Kind::Process => &mut instance.track_process,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse_str;

    const BASE: &str = "\
vrrp_script chk {
 script /bin/true
 weight -20
}
vrrp_track_file tf {
 file /run/vrrp-agent-test-flag
}
vrrp_instance a {
 interface eth0
 virtual_router_id 1
 priority 150
 track_script {
  chk weight 0
 }
 virtual_ipaddress { 192.0.2.1 }
}
vrrp_instance b {
 interface eth0
 virtual_router_id 2
 priority 100
 track_script {
  chk weight -5
 }
 virtual_ipaddress { 192.0.2.2 }
}
vrrp_instance c {
 interface eth0
 virtual_router_id 3
 virtual_ipaddress { 192.0.2.3 }
}
";

    fn tracked(text: &str, instance: &str) -> Vec<(String, Option<i32>, bool)> {
        let loaded = match parse_str(text, "k.conf") {
            Ok(loaded) => loaded,
            Err(e) => panic!("{e}"),
        };
        let i = loaded
            .config
            .instance(instance)
            .unwrap_or_else(|| panic!("no instance {instance}"));
        i.track_script
            .iter()
            .chain(&i.track_interface)
            .chain(&i.track_file)
            .map(|r| (r.name.clone(), r.weight, r.reverse))
            .collect()
    }

    #[test]
    fn every_member_tracks_the_group_s_items_and_others_do_not() {
        let text = format!(
            "{BASE}vrrp_sync_group G {{\n group {{\n  a\n  b\n }}\n track_script {{\n  chk weight -30 reverse\n }}\n track_interface {{\n  eth9 weight -10\n }}\n track_file {{\n  tf\n }}\n}}\n"
        );
        // a's own unweighted chk stays unweighted; b's weighted one takes
        // the group's weight; both get the interface and the file.
        assert_eq!(
            tracked(&text, "a"),
            [
                ("chk".into(), Some(0), false),
                ("eth9".into(), Some(-10), false),
                ("tf".into(), None, false)
            ]
        );
        assert_eq!(
            tracked(&text, "b"),
            [
                ("chk".into(), Some(-30), true),
                ("eth9".into(), Some(-10), false),
                ("tf".into(), None, false)
            ]
        );
        assert!(tracked(&text, "c").is_empty());
    }

    #[test]
    fn a_group_item_naming_nothing_is_one_located_error() {
        let text = format!(
            "{BASE}vrrp_sync_group G {{\n group {{\n  a\n  b\n }}\n track_script {{\n  nope\n }}\n}}\n"
        );
        let errors = match parse_str(&text, "k.conf") {
            Ok(_) => panic!("accepted a group tracking a missing script"),
            Err(e) => e.errors,
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].to_string().starts_with(
                "k.conf:37:3: track_script \"nope\" in vrrp_sync_group G names no vrrp_script"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn an_address_owner_member_gets_the_group_s_items_without_weight() {
        let text = format!(
            "{}vrrp_sync_group G {{\n group {{\n  c\n  b\n }}\n track_script {{\n  chk\n }}\n}}\n",
            BASE.replace(
                " virtual_router_id 3\n",
                " virtual_router_id 3\n priority 255\n"
            )
        );
        let loaded = match parse_str(&text, "k.conf") {
            Ok(loaded) => loaded,
            Err(e) => panic!("{e}"),
        };
        // b's own weighted chk goes (group member), then c's copy of the
        // group's chk is unweighted (owner).
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        let c = loaded.config.instance("c").map(|c| c.track_script.clone());
        assert_eq!(c.map(|r| r[0].weight), Some(Some(0)));
    }

    const MEMBER_TRACKING: &str = "\
vrrp_script chk {
 script /bin/true
 weight -20
}
vrrp_track_file one {
 file /run/vrrp-agent-test-one
}
vrrp_track_file heavy {
 file /run/vrrp-agent-test-heavy
 weight -5
}
vrrp_instance a {
 interface eth0
 virtual_router_id 1
 priority 150
 track_interface {
  eth7 weight -10
  eth8
 }
 track_script {
  chk
 }
 track_file {
  one
  heavy
 }
 virtual_ipaddress { 192.0.2.1 }
}
vrrp_instance b {
 interface eth0
 virtual_router_id 2
 virtual_ipaddress { 192.0.2.2 }
}
";

    fn loaded(text: &str) -> crate::config::Loaded {
        match parse_str(text, "k.conf") {
            Ok(loaded) => loaded,
            Err(e) => panic!("{e}"),
        }
    }

    fn own_tracking(loaded: &crate::config::Loaded, name: &str) -> Vec<(String, Option<i32>)> {
        let i = loaded.config.instance(name).expect("instance");
        i.track_interface
            .iter()
            .chain(&i.track_script)
            .chain(&i.track_file)
            .map(|r| (r.name.clone(), r.weight))
            .collect()
    }

    /// keepalived's vrrp_complete_instance, for a member of a group without
    /// sync_group_tracking_weight: weighted interface -> fault when down,
    /// weighted script dropped, file at weight 1 unweighted, heavier dropped.
    #[test]
    fn a_group_member_loses_its_own_weights_as_in_keepalived() {
        let text = format!("{MEMBER_TRACKING}vrrp_sync_group G {{\n group {{\n  a\n  b\n }}\n}}\n");
        let loaded = loaded(&text);
        assert_eq!(
            own_tracking(&loaded, "a"),
            [
                ("eth7".into(), Some(0)),
                ("eth8".into(), None),
                ("one".into(), Some(0))
            ]
        );
        let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(
            warnings[0].starts_with(
                "k.conf:17:3: vrrp_instance a: track_interface \"eth7\" has weight -10, which keepalived ignores because it is a member of vrrp_sync_group G"
            ),
            "{warnings:?}"
        );
        assert!(warnings[0].ends_with("tracked unweighted instead (fault when it fails)"));
        assert!(
            warnings[1]
                .starts_with("k.conf:21:3: vrrp_instance a: track_script \"chk\" has weight -20")
        );
        assert!(warnings[1].ends_with("; not tracked"), "{warnings:?}");
        assert!(
            warnings[2]
                .starts_with("k.conf:24:3: vrrp_instance a: track_file \"one\" has weight 1")
        );
        assert!(
            warnings[3]
                .starts_with("k.conf:25:3: vrrp_instance a: track_file \"heavy\" has weight -5")
        );
        assert!(warnings[3].ends_with("; not tracked"), "{warnings:?}");
    }

    #[test]
    fn sync_group_tracking_weight_keeps_member_weights_and_global_tracking_warns() {
        for (keyword, deprecated) in [
            ("sync_group_tracking_weight", false),
            ("global_tracking", true),
        ] {
            let text = format!(
                "{MEMBER_TRACKING}vrrp_sync_group G {{\n group {{\n  a\n  b\n }}\n {keyword}\n}}\n"
            );
            let loaded = loaded(&text);
            assert_eq!(
                own_tracking(&loaded, "a"),
                [
                    ("eth7".into(), Some(-10)),
                    ("eth8".into(), None),
                    ("chk".into(), None),
                    ("one".into(), None),
                    ("heavy".into(), None)
                ],
                "{keyword}"
            );
            let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
            if deprecated {
                assert_eq!(warnings.len(), 1, "{warnings:?}");
                assert!(
                    warnings[0].starts_with(
                        "k.conf:39:2: vrrp_sync_group G: global_tracking is deprecated"
                    ),
                    "{warnings:?}"
                );
            } else {
                assert!(warnings.is_empty(), "{warnings:?}");
            }
        }
    }

    /// An owner outside any group stops tracking a weighted interface
    /// (keepalived frees it) rather than faulting on it.
    #[test]
    fn an_address_owner_loses_its_own_weights() {
        let text = MEMBER_TRACKING.replace(" priority 150\n", " priority 255\n");
        let loaded = loaded(&text);
        assert_eq!(
            own_tracking(&loaded, "a"),
            [("eth8".into(), None), ("one".into(), Some(0))]
        );
        assert_eq!(loaded.warnings.len(), 4, "{:?}", loaded.warnings);
        assert!(
            loaded.warnings[0]
                .to_string()
                .contains("because it is the address owner (priority 255)")
        );
    }
}
