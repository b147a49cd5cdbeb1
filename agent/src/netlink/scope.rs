//! Address and route scopes, spelled the way keepalived.conf and `ip` spell them.

use std::fmt;
use std::str::FromStr;

use rtnetlink::packet_route::address::AddressScope;
use rtnetlink::packet_route::route::RouteScope;

/// `RT_SCOPE_*`: how far an address or route is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `global` (kernel name: universe), the default.
    Global,
    Site,
    Link,
    Host,
    Nowhere,
    /// A numeric scope from `/etc/iproute2/rt_scopes`.
    Other(u8),
}

const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_SITE: u8 = 200;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_HOST: u8 = 254;
const RT_SCOPE_NOWHERE: u8 = 255;

impl Scope {
    pub fn as_u8(self) -> u8 {
        match self {
            Scope::Global => RT_SCOPE_UNIVERSE,
            Scope::Site => RT_SCOPE_SITE,
            Scope::Link => RT_SCOPE_LINK,
            Scope::Host => RT_SCOPE_HOST,
            Scope::Nowhere => RT_SCOPE_NOWHERE,
            Scope::Other(value) => value,
        }
    }

    pub fn from_u8(value: u8) -> Scope {
        match value {
            RT_SCOPE_UNIVERSE => Scope::Global,
            RT_SCOPE_SITE => Scope::Site,
            RT_SCOPE_LINK => Scope::Link,
            RT_SCOPE_HOST => Scope::Host,
            RT_SCOPE_NOWHERE => Scope::Nowhere,
            other => Scope::Other(other),
        }
    }
}

impl From<Scope> for AddressScope {
    fn from(scope: Scope) -> Self {
        AddressScope::from(scope.as_u8())
    }
}

impl From<AddressScope> for Scope {
    fn from(scope: AddressScope) -> Self {
        Scope::from_u8(u8::from(scope))
    }
}

impl From<Scope> for RouteScope {
    fn from(scope: Scope) -> Self {
        RouteScope::from(scope.as_u8())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Site => f.write_str("site"),
            Scope::Link => f.write_str("link"),
            Scope::Host => f.write_str("host"),
            Scope::Nowhere => f.write_str("nowhere"),
            Scope::Other(value) => write!(f, "{value}"),
        }
    }
}

/// `--dump-config` shows a scope as keepalived.conf spells it.
impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The words `ip` and keepalived accept after `scope`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope {given:?}; expected global, universe, site, link, host, nowhere or a number 0-255"
)]
pub struct UnknownScope {
    pub given: String,
}

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "global" | "universe" => Ok(Scope::Global),
            "site" => Ok(Scope::Site),
            "link" => Ok(Scope::Link),
            "host" => Ok(Scope::Host),
            "nowhere" => Ok(Scope::Nowhere),
            number => number
                .parse::<u8>()
                .map(Scope::from_u8)
                .map_err(|_| UnknownScope {
                    given: text.to_owned(),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip_through_the_kernel_values() {
        for (text, scope, value) in [
            ("global", Scope::Global, 0),
            ("site", Scope::Site, 200),
            ("link", Scope::Link, 253),
            ("host", Scope::Host, 254),
            ("nowhere", Scope::Nowhere, 255),
        ] {
            assert_eq!(text.parse::<Scope>(), Ok(scope));
            assert_eq!(scope.as_u8(), value);
            assert_eq!(Scope::from_u8(value), scope);
            assert_eq!(scope.to_string(), text);
            assert_eq!(Scope::from(AddressScope::from(scope)), scope);
        }
        assert_eq!("universe".parse::<Scope>(), Ok(Scope::Global));
        assert_eq!("253".parse::<Scope>(), Ok(Scope::Link));
        assert_eq!("17".parse::<Scope>(), Ok(Scope::Other(17)));
        assert_eq!(u8::from(RouteScope::from(Scope::Link)), 253);
    }

    #[test]
    fn unknown_words_are_rejected_with_the_choices() {
        let error = "planet".parse::<Scope>().unwrap_err();
        assert_eq!(error.given, "planet");
        assert!(error.to_string().contains("global"));
        assert!("256".parse::<Scope>().is_err());
    }
}
