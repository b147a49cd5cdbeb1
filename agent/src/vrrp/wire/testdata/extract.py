#!/usr/bin/env python3
"""Turns the pcaps written by capture.sh into the .hex golden vectors.

Adverts are stored from the IP header on; the gratuitous ARP and the
unsolicited neighbour advertisement as whole Ethernet frames. The
v3_ipv4_checksum_as_v2 vector is *derived*, not captured: keepalived 2.2.7
has no `v3_checksum_as_v2` option, so it is the captured v3_ipv4 advert with
its checksum recomputed over the VRRP message alone (RFC 9568). tshark's
`vrrp.v3_checksum_as_in_v2` preference confirms that checksum independently.
"""
import struct
import subprocess
import sys
from pathlib import Path

ETH_IPV4, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD


def frames(path):
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off : off + 16])
        off += 16
        yield data[off : off + incl]
        off += incl


def ethertype(frame):
    return struct.unpack("!H", frame[12:14])[0]


def first(path, want):
    for f in frames(path):
        if want(f):
            return f
    raise SystemExit(f"{path}: no matching frame")


def is_vrrp(f):
    t = ethertype(f)
    return (t == ETH_IPV4 and f[14 + 9] == 112) or (t == ETH_IPV6 and f[14 + 6] == 112)


def is_garp(f):
    # sender IP == target IP: the gratuitous form, not ordinary resolution
    return ethertype(f) == ETH_ARP and f[14 + 14 : 14 + 18] == f[14 + 24 : 14 + 28]


def is_na(f):
    return ethertype(f) == ETH_IPV6 and f[14 + 6] == 58 and f[14 + 40] == 136


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def write(dir_, name, b):
    (dir_ / f"{name}.hex").write_text(b.hex() + "\n")


def main():
    d = Path(sys.argv[1])
    for name in ("v2_pass_ipv4", "v3_ipv4", "v3_ipv4_unicast", "v3_ipv6"):
        write(d, name, first(d / f"{name}.pcap", is_vrrp)[14:])
    write(d, "garp_ipv4", first(d / "v2_pass_ipv4.pcap", is_garp))
    write(d, "unsolicited_na", first(d / "v3_ipv6.pcap", is_na))

    ip = bytearray(first(d / "v3_ipv4.pcap", is_vrrp)[14:])
    ihl = (ip[0] & 0xF) * 4
    msg = ip[ihl:]
    msg[6:8] = b"\0\0"
    msg[6:8] = struct.pack("!H", checksum(bytes(msg)))
    ip[ihl:] = msg
    write(d, "v3_ipv4_checksum_as_v2", bytes(ip))
    verify_with_tshark(first(d / "v3_ipv4.pcap", is_vrrp)[:14] + bytes(ip))


def verify_with_tshark(frame):
    """Asks tshark (an independent implementation) to check the derived checksum."""
    pcap = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    pcap += struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame
    out = subprocess.run(
        ["tshark", "-o", "vrrp.v3_checksum_as_in_v2:TRUE", "-r", "-", "-V"],
        input=pcap, capture_output=True, check=True,
    ).stdout.decode()
    line = next(l for l in out.splitlines() if l.strip().startswith("Checksum:"))
    if "[correct]" not in line:
        raise SystemExit(f"tshark disagrees with the derived checksum: {line.strip()}")
    print("tshark:", line.strip())

if __name__ == "__main__":
    main()
