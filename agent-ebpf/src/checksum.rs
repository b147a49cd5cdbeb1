//! Internet checksum over packet data. Words are summed in host byte order:
//! the one's-complement sum is byte-order independent, and a valid message
//! folds to 0xffff either way.

use aya_ebpf::programs::XdpContext;

use crate::packet::{MAX_VRRP_LEN, ptr_at};

const MAX_WORDS: usize = MAX_VRRP_LEN / 4;

/// Sums `len` bytes (a multiple of 4, at most `MAX_VRRP_LEN`) from `offset`.
#[inline(always)]
pub fn sum_words(ctx: &XdpContext, offset: usize, len: usize) -> Option<u64> {
    let words = len / 4;
    let mut sum = 0u64;
    let mut index = 0usize;
    // A fixed upper bound keeps the loop provably finite for the verifier.
    while index < MAX_WORDS {
        if index >= words {
            break;
        }
        let word = ptr_at::<u32>(ctx, offset + index * 4)?;
        // SAFETY: bounds checked just above; packet data may be unaligned.
        sum += unsafe { word.read_unaligned() } as u64;
        index += 1;
    }
    Some(sum)
}

#[inline(always)]
pub fn ipv4_pseudo_header(source: [u8; 4], destination: [u8; 4], vrrp_len: u16) -> u64 {
    let length = vrrp_len.to_be_bytes();
    u32::from_ne_bytes(source) as u64
        + u32::from_ne_bytes(destination) as u64
        + u32::from_ne_bytes([0, 112, length[0], length[1]]) as u64
}

#[inline(always)]
pub fn ipv6_pseudo_header(source: &[u8; 16], destination: &[u8; 16], vrrp_len: u32) -> u64 {
    let mut sum = 0u64;
    let mut index = 0;
    while index < 4 {
        let at = index * 4;
        sum +=
            u32::from_ne_bytes([source[at], source[at + 1], source[at + 2], source[at + 3]]) as u64;
        sum += u32::from_ne_bytes([
            destination[at],
            destination[at + 1],
            destination[at + 2],
            destination[at + 3],
        ]) as u64;
        index += 1;
    }
    sum + u32::from_ne_bytes(vrrp_len.to_be_bytes()) as u64
        + u32::from_ne_bytes([0, 0, 0, 112]) as u64
}

#[inline(always)]
pub fn is_valid(sum: u64) -> bool {
    fold(sum) == 0xffff
}

#[inline(always)]
fn fold(mut sum: u64) -> u16 {
    // Four rounds bring any u64 down to 16 bits.
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}
