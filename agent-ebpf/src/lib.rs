#![no_std]
// The programs live in the `vrrp-agent-ebpf` binary; this library only exists
// so the agent can name this crate as a build dependency and be rebuilt when
// it changes.
