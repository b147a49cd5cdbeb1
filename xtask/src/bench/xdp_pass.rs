//! The throughput baseline that isolates `vrrp_rx`'s own cost: an XDP
//! program that only returns XDP_PASS (two instructions), loaded with the
//! bpf syscall and attached through a BPF link in the same (driver) mode
//! `vrrp_rx` uses. On veth, attaching any XDP program also moves the
//! receive side to veth's NAPI path; measured against this program, that
//! switch is in both numbers and only `vrrp_rx`'s work differs.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_PASS: i32 = 2;

/// `struct bpf_insn`.
#[repr(C)]
struct Insn {
    code: u8,
    registers: u8,
    offset: i16,
    imm: i32,
}

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to
/// `expected_attach_type` (the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_LINK_CREATE` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

fn bpf<T>(command: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a valid prefix of `union bpf_attr` for `command`,
    // and every pointer in it outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            std::ptr::from_mut(attr),
            size_of::<T>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// An attached XDP_PASS program; dropping it detaches the program.
pub struct PassOnly {
    _link: OwnedFd,
    _program: OwnedFd,
}

impl PassOnly {
    /// Loads the program and attaches it to `ifindex` of the calling
    /// thread's network namespace (call it inside the host's `run`).
    pub fn attach(ifindex: u32) -> io::Result<Self> {
        let insns = [
            // r0 = XDP_PASS
            Insn {
                code: 0xb7,
                registers: 0,
                offset: 0,
                imm: XDP_PASS,
            },
            // exit
            Insn {
                code: 0x95,
                registers: 0,
                offset: 0,
                imm: 0,
            },
        ];
        let license = c"GPL";
        let mut name = [0u8; 16];
        name[..9].copy_from_slice(b"xdp_pass\0");
        let mut load = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            expected_attach_type: BPF_XDP,
            ..ProgLoadAttr::default()
        };
        let program = bpf(BPF_PROG_LOAD, &mut load)?;
        let mut link = LinkCreateAttr {
            prog_fd: program.as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            flags: 0,
        };
        let link = bpf(BPF_LINK_CREATE, &mut link)?;
        Ok(Self {
            _link: link,
            _program: program,
        })
    }
}
