//! The shape most failover tests share: two routers and a client on one
//! switch, addressed in 192.0.2.0/24.

use anyhow::Result;

use crate::{Host, Lab, Switch};

/// Routers `a` (192.0.2.1) and `b` (192.0.2.2) and client `c` (192.0.2.3)
/// on one switch. Dropping it tears the lab down.
pub struct RouterPair {
    pub a: Host,
    pub b: Host,
    pub c: Host,
    pub a_if: String,
    pub b_if: String,
    pub c_if: String,
    _switch: Switch,
    _lab: Lab,
}

impl RouterPair {
    /// `prefix` names the lab's namespaces (1..=12 of `[a-z0-9]`).
    pub fn new(prefix: &str) -> Result<Self> {
        let lab = Lab::new(prefix)?;
        let switch = lab.add_switch("sw")?;
        let a = lab.add_host("a")?;
        let b = lab.add_host("b")?;
        let c = lab.add_host("c")?;
        let a_if = lab.attach(&a, &switch)?;
        let b_if = lab.attach(&b, &switch)?;
        let c_if = lab.attach(&c, &switch)?;
        a.add_address(&a_if, "192.0.2.1/24")?;
        b.add_address(&b_if, "192.0.2.2/24")?;
        c.add_address(&c_if, "192.0.2.3/24")?;
        Ok(Self {
            a,
            b,
            c,
            a_if,
            b_if,
            c_if,
            _switch: switch,
            _lab: lab,
        })
    }
}

/// keepalived.conf for one VRRPv3 instance (VRID 51, `VI_1`) on `interface`
/// with one `vip`/24, starting as backup: the configuration of both routers
/// of a [`RouterPair`] (the priority decides the master).
pub fn single_vip_config(interface: &str, priority: u8, advert_int: &str, vip: &str) -> String {
    format!(
        "global_defs {{\n    router_id n{priority}\n    vrrp_version 3\n}}\n\
         vrrp_instance VI_1 {{\n\
         \x20   state BACKUP\n\
         \x20   interface {interface}\n\
         \x20   virtual_router_id 51\n\
         \x20   priority {priority}\n\
         \x20   advert_int {advert_int}\n\
         \x20   virtual_ipaddress {{\n\
         \x20       {vip}/24\n\
         \x20   }}\n\
         }}\n"
    )
}
