//! The unicast peers a `check_unicast_src` instance accepts adverts from
//! (`UNICAST_SOURCES`): the kernel drops adverts from any other source,
//! and from a peer outside its `min_ttl`..`max_ttl`.

use std::{collections::HashSet, net::IpAddr};

use agent_common::{InstanceKey, map_names};
pub use agent_common::{UnicastSource, UnicastSourceKey};

use super::{Datapath, DatapathError, address_to_key, map_error};

/// One configured unicast peer and the TTL range its adverts must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnicastPeerFilter {
    pub address: IpAddr,
    pub min_ttl: u8,
    pub max_ttl: u8,
}

impl UnicastPeerFilter {
    pub fn key(&self, instance: InstanceKey) -> UnicastSourceKey {
        UnicastSourceKey {
            instance,
            address: address_to_key(self.address).1,
        }
    }

    pub fn value(&self) -> UnicastSource {
        UnicastSource {
            min_ttl: self.min_ttl,
            max_ttl: self.max_ttl,
            _pad: [0; 2],
        }
    }
}

impl Datapath {
    /// Makes `peers` the unicast sources of `instance`: new ones added,
    /// changed ranges rewritten, peers no longer configured removed. An
    /// empty list removes them all.
    pub fn set_unicast_sources(
        &mut self,
        instance: InstanceKey,
        peers: &[UnicastPeerFilter],
    ) -> Result<(), DatapathError> {
        let wanted: HashSet<UnicastSourceKey> =
            peers.iter().map(|peer| peer.key(instance)).collect();
        let mut map =
            self.hash_map::<UnicastSourceKey, UnicastSource>(map_names::UNICAST_SOURCES)?;
        for peer in peers {
            map.insert(peer.key(instance), peer.value(), 0)
                .map_err(map_error(map_names::UNICAST_SOURCES))?;
        }
        let stale: Vec<UnicastSourceKey> = self
            .unicast_source_keys()?
            .into_iter()
            .filter(|key| key.instance == instance && !wanted.contains(key))
            .collect();
        for key in &stale {
            self.remove_key::<UnicastSourceKey, UnicastSource>(map_names::UNICAST_SOURCES, key)?;
        }
        for key in &wanted {
            self.inherited.unicast_sources.remove(key);
        }
        Ok(())
    }

    #[cfg(test)]
    /// What the kernel checks `instance`'s sources against, keyed by
    /// address in map encoding.
    pub fn unicast_sources(
        &mut self,
        instance: InstanceKey,
    ) -> Result<Vec<(UnicastSourceKey, UnicastSource)>, DatapathError> {
        let map = self.hash_map::<UnicastSourceKey, UnicastSource>(map_names::UNICAST_SOURCES)?;
        map.iter()
            .filter(|entry| !matches!(entry, Ok((key, _)) if key.instance != instance))
            .collect::<Result<Vec<_>, aya::maps::MapError>>()
            .map_err(map_error(map_names::UNICAST_SOURCES))
    }

    pub(super) fn unicast_source_keys(
        &mut self,
    ) -> Result<HashSet<UnicastSourceKey>, DatapathError> {
        self.keys::<UnicastSourceKey, UnicastSource>(map_names::UNICAST_SOURCES)
    }
}
