//! Virtual routes (`virtual_routes`) and the netlink messages that add and
//! delete them.
//!
//! Like keepalived 2.2.7, routes are added with protocol `keepalived`
//! (`RTPROT_KEEPALIVED`, so `ip route show proto keepalived` keeps finding
//! them after a migration) and scope global unless `scope` is written, also
//! for routes with no gateway (`ip route add` would pick `link` there).

use std::fmt;
use std::net::IpAddr;

use rtnetlink::RouteMessageBuilder;
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType};

use super::device::Device;
use super::error::NetlinkError;
use super::scope::Scope;

/// `RT_TABLE_MAIN`.
pub const MAIN_TABLE: u32 = 254;

/// The route types keepalived.conf can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    #[default]
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

impl RouteKind {
    fn kernel_type(self) -> RouteType {
        match self {
            RouteKind::Unicast => RouteType::Unicast,
            RouteKind::Blackhole => RouteType::BlackHole,
            RouteKind::Unreachable => RouteType::Unreachable,
            RouteKind::Prohibit => RouteType::Prohibit,
        }
    }
}

/// One `virtual_routes` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VirtualRoute {
    pub destination: IpAddr,
    pub prefix_len: u8,
    pub kind: RouteKind,
    pub via: Option<IpAddr>,
    /// Preferred source address (`src`).
    pub src: Option<IpAddr>,
    pub device: Option<Device>,
    /// `None` means global.
    pub scope: Option<Scope>,
    /// `metric`/`priority`; `None` leaves the kernel default (0 for IPv4,
    /// 1024 for IPv6).
    pub metric: Option<u32>,
    /// `None` means the main table.
    pub table: Option<u32>,
}

impl VirtualRoute {
    /// A unicast route to `destination/prefix_len` with nothing else set.
    pub fn new(destination: IpAddr, prefix_len: u8) -> Self {
        VirtualRoute {
            destination,
            prefix_len,
            kind: RouteKind::Unicast,
            via: None,
            src: None,
            device: None,
            scope: None,
            metric: None,
            table: None,
        }
    }

    pub fn table_id(&self) -> u32 {
        self.table.unwrap_or(MAIN_TABLE)
    }

    /// Rejects what the kernel would reject with a bare `EINVAL`, saying why.
    pub fn validate(&self) -> Result<(), NetlinkError> {
        let invalid = |problem: String, expected: &str| NetlinkError::InvalidSpec {
            what: format!("virtual route {self}"),
            problem,
            expected: expected.to_owned(),
        };
        let max_prefix = if self.destination.is_ipv4() { 32 } else { 128 };
        if self.prefix_len > max_prefix {
            return Err(invalid(
                format!("prefix length {} is too long", self.prefix_len),
                &format!("a prefix length of 0 to {max_prefix}"),
            ));
        }
        if let Some(src) = self.src
            && src.is_ipv4() != self.destination.is_ipv4()
        {
            return Err(invalid(
                format!("src {src} is not of the destination's address family"),
                "a src address of the same family as the destination",
            ));
        }
        // An IPv4 route may use an IPv6 gateway (RTA_VIA), not the reverse.
        if let Some(via) = self.via
            && self.destination.is_ipv6()
            && via.is_ipv4()
        {
            return Err(invalid(
                format!("IPv4 gateway {via} for an IPv6 destination"),
                "an IPv6 gateway",
            ));
        }
        if self.kind == RouteKind::Unicast {
            if self.via.is_none() && self.device.is_none() {
                return Err(invalid(
                    "neither a gateway nor a device".to_owned(),
                    "via <gateway>, dev <interface>, or both",
                ));
            }
        } else if self.via.is_some() || self.device.is_some() {
            return Err(invalid(
                format!("a {:?} route cannot have a gateway or device", self.kind),
                "no via/dev on blackhole, unreachable, prohibit and throw routes",
            ));
        }
        if self.table == Some(0) {
            return Err(invalid(
                "table 0 is not a routing table".to_owned(),
                "a table id from 1 to 4294967295 (254 is main)",
            ));
        }
        Ok(())
    }

    /// The `RTM_NEWROUTE` body, with the device already resolved.
    pub(crate) fn add_message(&self, ifindex: Option<u32>) -> Result<RouteMessage, NetlinkError> {
        let scope = self.scope.map_or(RouteScope::Universe, RouteScope::from);
        self.message(ifindex, scope)
    }

    /// The `RTM_DELROUTE` body. It names our protocol so the kernel never
    /// deletes a look-alike route someone else put in place of ours, and
    /// scope "nowhere", which the kernel takes as "any scope".
    pub(crate) fn delete_message(
        &self,
        ifindex: Option<u32>,
    ) -> Result<RouteMessage, NetlinkError> {
        self.message(ifindex, RouteScope::NoWhere)
    }

    fn message(
        &self,
        ifindex: Option<u32>,
        scope: RouteScope,
    ) -> Result<RouteMessage, NetlinkError> {
        // rtnetlink does not export its builder error type, only its Display.
        let builder_error = |error: &dyn fmt::Display| NetlinkError::InvalidSpec {
            what: format!("virtual route {self}"),
            problem: error.to_string(),
            expected: "addresses of one family".to_owned(),
        };
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(self.destination, self.prefix_len)
            .map_err(|error| builder_error(&error))?
            .table_id(self.table_id())
            .protocol(RouteProtocol::KeepAlived)
            .scope(scope)
            .kind(self.kind.kernel_type());
        if let Some(via) = self.via {
            builder = builder
                .gateway(via)
                .map_err(|error| builder_error(&error))?;
        }
        if let Some(src) = self.src {
            builder = builder
                .pref_source(src)
                .map_err(|error| builder_error(&error))?;
        }
        if let Some(ifindex) = ifindex {
            builder = builder.output_interface(ifindex);
        }
        if let Some(metric) = self.metric {
            builder = builder.priority(metric);
        }
        Ok(builder.build())
    }
}

impl fmt::Display for VirtualRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RouteKind::Unicast => {}
            RouteKind::Blackhole => f.write_str("blackhole ")?,
            RouteKind::Unreachable => f.write_str("unreachable ")?,
            RouteKind::Prohibit => f.write_str("prohibit ")?,
        }
        write!(f, "{}/{}", self.destination, self.prefix_len)?;
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        if let Some(device) = &self.device {
            write!(f, " dev {device}")?;
        }
        if let Some(src) = self.src {
            write!(f, " src {src}")?;
        }
        if let Some(metric) = self.metric {
            write!(f, " metric {metric}")?;
        }
        if let Some(table) = self.table {
            write!(f, " table {table}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn gateway_route() -> VirtualRoute {
        VirtualRoute {
            via: Some(ip("198.51.100.254")),
            device: Some(Device::from("eth1")),
            src: Some(ip("198.51.100.1")),
            metric: Some(20),
            table: Some(1000),
            ..VirtualRoute::new(ip("203.0.113.0"), 24)
        }
    }

    #[test]
    fn add_message_carries_every_option_with_keepalived_defaults() {
        let route = gateway_route();
        route.validate().unwrap();
        let message = route.add_message(Some(5)).unwrap();
        assert_eq!(message.header.destination_prefix_length, 24);
        assert_eq!(message.header.protocol, RouteProtocol::KeepAlived);
        assert_eq!(message.header.scope, RouteScope::Universe);
        assert_eq!(message.header.kind, RouteType::Unicast);
        let attributes = &message.attributes;
        assert!(attributes.contains(&RouteAttribute::Oif(5)));
        assert!(attributes.contains(&RouteAttribute::Priority(20)));
        assert!(attributes.contains(&RouteAttribute::Table(1000)));
        assert!(
            attributes.contains(&RouteAttribute::Gateway(RouteAddress::from(ip(
                "198.51.100.254"
            ))))
        );
        assert!(
            attributes.contains(&RouteAttribute::PrefSource(RouteAddress::from(ip(
                "198.51.100.1"
            ))))
        );
        assert!(
            attributes.contains(&RouteAttribute::Destination(RouteAddress::from(ip(
                "203.0.113.0"
            ))))
        );
    }

    #[test]
    fn delete_matches_any_scope_but_only_our_protocol() {
        let route = VirtualRoute {
            scope: Some(Scope::Link),
            ..gateway_route()
        };
        assert_eq!(
            route.add_message(Some(5)).unwrap().header.scope,
            RouteScope::Link
        );
        let delete = route.delete_message(Some(5)).unwrap();
        assert_eq!(delete.header.scope, RouteScope::NoWhere);
        assert_eq!(delete.header.protocol, RouteProtocol::KeepAlived);
    }

    #[test]
    fn special_kinds_and_main_table() {
        let route = VirtualRoute {
            kind: RouteKind::Blackhole,
            ..VirtualRoute::new(ip("2001:db8:dead::"), 48)
        };
        route.validate().unwrap();
        let message = route.add_message(None).unwrap();
        assert_eq!(message.header.kind, RouteType::BlackHole);
        assert_eq!(message.header.table, 254);
        assert_eq!(route.to_string(), "blackhole 2001:db8:dead::/48");
    }

    #[test]
    fn invalid_routes_say_what_is_wrong() {
        let base = gateway_route();
        let cases = [
            (
                VirtualRoute {
                    prefix_len: 33,
                    ..base.clone()
                },
                "0 to 32",
            ),
            (
                VirtualRoute {
                    src: Some(ip("2001:db8::1")),
                    ..base.clone()
                },
                "same family",
            ),
            (
                VirtualRoute {
                    via: Some(ip("192.0.2.1")),
                    device: None,
                    ..VirtualRoute::new(ip("2001:db8::"), 32)
                },
                "IPv6 gateway",
            ),
            (VirtualRoute::new(ip("203.0.113.0"), 24), "via <gateway>"),
            (
                VirtualRoute {
                    kind: RouteKind::Prohibit,
                    ..base.clone()
                },
                "no via/dev",
            ),
            (
                VirtualRoute {
                    table: Some(0),
                    ..base.clone()
                },
                "table id",
            ),
        ];
        for (route, expected) in cases {
            let error = route.validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{route}: {error}");
            assert!(error.contains(&route.destination.to_string()), "{error}");
        }
        let v4_via_v6 = VirtualRoute {
            via: Some(ip("2001:db8::1")),
            ..base
        };
        assert!(v4_via_v6.validate().is_ok());
        assert!(v4_via_v6.add_message(Some(1)).is_ok());
    }
}
