//! keepalived.conf text shared by both implementations: the agent reads the
//! same file keepalived does, so both are measured on identical settings.

use std::fmt::Write as _;

use serde::Serialize;

/// Advertisement timing of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Advert {
    /// VRRPv2, advert_int 1 (keepalived's default).
    V2OneSecond,
    /// VRRPv3, advert_int 0.01 (the fastest VRRPv3 allows).
    V3TenMillis,
}

impl Advert {
    pub fn label(self) -> &'static str {
        match self {
            Self::V2OneSecond => "v2 advert_int 1",
            Self::V3TenMillis => "v3 advert_int 0.01",
        }
    }

    fn version(self) -> u8 {
        match self {
            Self::V2OneSecond => 2,
            Self::V3TenMillis => 3,
        }
    }

    fn interval_text(self) -> &'static str {
        match self {
            Self::V2OneSecond => "1",
            Self::V3TenMillis => "0.01",
        }
    }

    /// The advertisement interval.
    pub fn interval(self) -> std::time::Duration {
        match self {
            Self::V2OneSecond => std::time::Duration::from_secs(1),
            Self::V3TenMillis => std::time::Duration::from_millis(10),
        }
    }

    /// Master_Down_Interval of a backup at `priority` (RFC 5798 §6.1), in
    /// milliseconds: how long a failover takes at least, without priority 0.
    pub fn master_down_ms(self, priority: u8) -> f64 {
        let interval_ms = self.interval().as_secs_f64() * 1000.0;
        3.0 * interval_ms + (256.0 - f64::from(priority)) * interval_ms / 256.0
    }
}

/// One `vrrp_instance` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub priority: u8,
    /// Virtual addresses with prefix, e.g. `203.0.113.10/24`.
    pub vips: Vec<String>,
}

/// A whole keepalived.conf for one router.
pub fn render(router_id: &str, advert: Advert, instances: &[Instance]) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "global_defs {{\n    router_id {router_id}\n    vrrp_version {}\n}}",
        advert.version()
    );
    for instance in instances {
        let _ = writeln!(
            text,
            "vrrp_instance {name} {{\n    state BACKUP\n    interface {iface}\n    \
             virtual_router_id {vrid}\n    priority {priority}\n    advert_int {interval}\n    \
             virtual_ipaddress {{",
            name = instance.name,
            iface = instance.interface,
            vrid = instance.vrid,
            priority = instance.priority,
            interval = advert.interval_text(),
        );
        for vip in &instance.vips {
            let _ = writeln!(text, "        {vip}");
        }
        let _ = writeln!(text, "    }}\n}}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_v3_instances() {
        let text = render(
            "r1",
            Advert::V3TenMillis,
            &[Instance {
                name: "VI_1".into(),
                interface: "veth0".into(),
                vrid: 51,
                priority: 200,
                vips: vec!["203.0.113.10/24".into()],
            }],
        );
        assert!(text.contains("vrrp_version 3"), "{text}");
        assert!(text.contains("vrrp_instance VI_1 {"), "{text}");
        assert!(text.contains("virtual_router_id 51"), "{text}");
        assert!(text.contains("advert_int 0.01"), "{text}");
        assert!(text.contains("        203.0.113.10/24\n    }\n}"), "{text}");
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }

    #[test]
    fn master_down_interval_follows_rfc_5798() {
        assert!((Advert::V2OneSecond.master_down_ms(100) - 3609.375).abs() < 1e-9);
        assert!((Advert::V3TenMillis.master_down_ms(128) - 35.0).abs() < 1e-9);
    }
}
