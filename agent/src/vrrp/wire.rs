//! Wire codec (owned by the protocol-core work).
