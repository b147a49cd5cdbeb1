//! keepalived.conf parsing (owned by the config work).
