//! The lab every VRRP scenario runs on: two routers and a client plugged
//! into one switch, routers on 192.0.2.0/24, the VIP in 203.0.113.0/24.

use anyhow::Result;
use lab::{Host, Lab};

/// The virtual address clients use.
pub const VIP: &str = "203.0.113.10";
/// The VIP as configured on the routers.
pub const VIP_CIDR: &str = "203.0.113.10/24";
/// A second virtual address (added by reload in the reload scenario).
pub const VIP2: &str = "203.0.113.11";
/// The routers' own addresses on the switch (r1, r2).
pub const ROUTER_IPS: [&str; 2] = ["192.0.2.1", "192.0.2.2"];
/// Port of the UDP echo servers bound to the VIPs on both routers.
pub const ECHO_PORT: u16 = 7007;

pub struct PairLab {
    /// Dropping it stops every process and deletes every namespace.
    _guard: Lab,
    pub routers: [Host; 2],
    /// Each router's interface on the switch.
    pub ifaces: [String; 2],
    pub client: Host,
    /// The client's interface on the switch.
    pub client_if: String,
}

impl PairLab {
    /// Builds the lab; `prefix` names its namespaces (1..=12 of `[a-z0-9]`).
    pub fn build(prefix: &str) -> Result<Self> {
        let lab = Lab::new(prefix)?;
        let switch = lab.add_switch("sw")?;
        let r1 = lab.add_host("r1")?;
        let r2 = lab.add_host("r2")?;
        let client = lab.add_host("client")?;
        let if1 = lab.attach(&r1, &switch)?;
        let if2 = lab.attach(&r2, &switch)?;
        let client_if = lab.attach(&client, &switch)?;
        r1.add_address(&if1, &format!("{}/24", ROUTER_IPS[0]))?;
        r2.add_address(&if2, &format!("{}/24", ROUTER_IPS[1]))?;
        client.add_address(&client_if, "192.0.2.100/24")?;
        // On-link with the VIP, so the client ARPs for it and follows GARPs.
        client.add_address(&client_if, "203.0.113.100/24")?;
        Ok(Self {
            _guard: lab,
            routers: [r1, r2],
            ifaces: [if1, if2],
            client,
            client_if,
        })
    }
}
