//! Election state machine (owned by the protocol-core work).
