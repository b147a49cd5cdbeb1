//! Builds the advert messages of one instance, once per (priority,
//! interval, shape): a master at advert_int 0.01 sends the same bytes a
//! hundred times a second, so they are encoded only when something changes.

use std::net::IpAddr;

use crate::vrrp::{
    AdvertInterval,
    wire::{self, EmitError, Endpoints, Repr},
};

use super::plan::InstancePlan;

/// Everything of a plan that goes into its adverts' bytes: a reload that
/// changes any of it (authentication, peers, addresses, checksum form)
/// changes what is sent at once.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvertShape {
    version: crate::vrrp::Version,
    vrid: u8,
    auth: wire::Auth,
    addresses: wire::VirtualAddresses,
    source: IpAddr,
    destinations: Vec<IpAddr>,
    group: IpAddr,
    checksum_form: crate::vrrp::ChecksumForm,
    old_unicast_checksum: bool,
}

impl AdvertShape {
    pub fn of(plan: &InstancePlan) -> Self {
        Self {
            version: plan.version,
            vrid: plan.election.vrid,
            auth: plan.auth,
            addresses: plan.advertised.clone(),
            source: plan.source,
            destinations: plan.destinations.clone(),
            group: plan.group,
            checksum_form: plan.checksum_form,
            old_unicast_checksum: plan.old_unicast_checksum,
        }
    }
}

/// The encoded adverts for every destination of an instance.
pub struct AdvertCache {
    key: Option<(u8, AdvertInterval, AdvertShape)>,
    messages: Vec<(Vec<u8>, IpAddr)>,
}

impl AdvertCache {
    pub fn new() -> Self {
        Self {
            key: None,
            messages: Vec::new(),
        }
    }

    /// Messages (bytes, destination) for an advert with `priority` and
    /// `interval`; re-encoded only when these differ from the last call.
    pub fn messages(
        &mut self,
        plan: &InstancePlan,
        priority: u8,
        interval: AdvertInterval,
    ) -> Result<&[(Vec<u8>, IpAddr)], EmitError> {
        let key = (priority, interval, AdvertShape::of(plan));
        if self.key.as_ref() != Some(&key) {
            let repr = Repr {
                version: plan.version,
                vrid: plan.election.vrid,
                priority,
                advert_interval: interval,
                auth: plan.auth,
                addresses: plan.advertised.clone(),
            };
            self.messages = plan
                .destinations
                .iter()
                .map(|destination| {
                    let checksum_destination = if plan.old_unicast_checksum {
                        plan.group
                    } else {
                        *destination
                    };
                    let endpoints = endpoints(plan.source, checksum_destination);
                    repr.to_bytes(&endpoints, plan.checksum_form)
                        .map(|bytes| (bytes, *destination))
                })
                .collect::<Result<_, _>>()?;
            self.key = Some(key);
        }
        Ok(&self.messages)
    }
}

impl Default for AdvertCache {
    fn default() -> Self {
        Self::new()
    }
}

fn endpoints(source: IpAddr, destination: IpAddr) -> Endpoints {
    match (source, destination) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Endpoints::V4 { src, dst },
        (IpAddr::V6(src), IpAddr::V6(dst)) => Endpoints::V6 { src, dst },
        // The plan only pairs addresses of the instance's own family.
        (IpAddr::V4(src), IpAddr::V6(_)) => Endpoints::ipv4_multicast(src),
        (IpAddr::V6(src), IpAddr::V4(_)) => Endpoints::ipv6_multicast(src),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        daemon::plan::{InterfaceInfo, plan},
        vrrp::{Version, wire::Parsed},
    };

    #[test]
    fn messages_parse_back_and_are_rebuilt_only_on_change() {
        let text = include_str!("../config/testdata/keepalived.conf");
        let config = crate::config::parse_str(text, "k.conf").unwrap().config;
        let info = |_: &str| {
            Some(InterfaceInfo {
                ifindex: 3,
                mac: [2, 0, 0, 0, 0, 1],
                ipv4: vec!["192.0.2.10".parse().unwrap()],
                ipv6_link_local: None,
                up: true,
            })
        };
        let plan = plan(&config, &info, "h").unwrap();
        let master1 = plan.instances().next().unwrap();
        let mut cache = AdvertCache::new();
        let interval = AdvertInterval::from_centiseconds(Version::V2, 100).unwrap();
        let first = cache.messages(master1, 100, interval).unwrap().to_vec();
        assert_eq!(first.len(), 1);
        let packet = wire::Packet::new_checked(&first[0].0[..], wire::AddressFamily::Ipv4).unwrap();
        let parsed = Repr::parse(&packet, &endpoints(master1.source, first[0].1)).unwrap();
        let Parsed { repr, .. } = parsed;
        assert_eq!((repr.vrid, repr.priority), (56, 100));
        assert_eq!(repr.auth, wire::Auth::simple_password("1234"));
        let again = cache.messages(master1, 100, interval).unwrap().to_vec();
        assert_eq!(first, again);
        let zero = cache.messages(master1, 0, interval).unwrap();
        assert_ne!(zero[0].0, first[0].0);
    }
}
