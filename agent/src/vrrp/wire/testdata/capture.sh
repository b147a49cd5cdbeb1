#!/usr/bin/env bash
# Captures the golden vectors in this directory from Debian's keepalived 2.2.7.
#
# Two network namespaces joined by one veth pair: "ka" runs keepalived on
# vrrp0 (192.0.2.1/24, 2001:db8::1/64, fe80::a, MAC 02:00:00:00:00:0a), "cap"
# runs tcpdump on peer0 (192.0.2.2/24, 2001:db8::2/64, fe80::b, MAC
# 02:00:00:00:00:0b). Addresses and MACs are fixed so the captured bytes are
# reproducible. Each scenario's keepalived.conf is written to <name>.conf here.
# Everything created is removed on exit, also on failure.
#
# Usage (root): ./capture.sh   (writes <name>.conf and <name>.pcap here, then
# runs extract.py to turn the pcaps into the .hex files the tests read).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
run_id="w$$$RANDOM"
ns_ka="ka-$run_id"
ns_cap="cap-$run_id"
work=$(mktemp -d "/tmp/wire-golden.XXXXXX")
ka_pid=""
cap_pid=""

cleanup() {
    local status=$?
    [ -n "$cap_pid" ] && kill "$cap_pid" 2>/dev/null || true
    if [ -n "$ka_pid" ]; then
        kill "$ka_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$ka_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$ka_pid" 2>/dev/null || true
    fi
    ip netns del "$ns_ka" 2>/dev/null || true
    ip netns del "$ns_cap" 2>/dev/null || true
    if [ "$status" -eq 0 ]; then
        rm -rf "$work"
    else
        echo "capture failed; keepalived logs and pcaps are in $work" >&2
    fi
}
trap cleanup EXIT

ip netns add "$ns_ka"
ip netns add "$ns_cap"
ip -n "$ns_ka" link add vrrp0 type veth peer name peer0 netns "$ns_cap"
setup() { # ns ifname mac v4 v6 ll
    ip -n "$1" link set lo up
    ip -n "$1" link set "$2" address "$3"
    ip -n "$1" link set "$2" addrgenmode none
    ip -n "$1" link set "$2" up
    ip -n "$1" addr add "$4/24" dev "$2"
    ip -n "$1" addr add "$5/64" dev "$2" nodad
    ip -n "$1" addr add "$6/64" dev "$2" nodad
}
setup "$ns_ka" vrrp0 02:00:00:00:00:0a 192.0.2.1 2001:db8::1 fe80::a
setup "$ns_cap" peer0 02:00:00:00:00:0b 192.0.2.2 2001:db8::2 fe80::b

# scenario name, packet count, then the keepalived.conf on stdin
scenario() {
    local name=$1 count=$2
    cat > "$here/$name.conf"
    ip netns exec "$ns_cap" timeout 20 tcpdump -U -n -i peer0 -w "$work/$name.pcap" -c "$count" \
        'ip proto 112 or ip6 proto 112 or arp or (icmp6 and ip6[40] == 136)' 2>/dev/null &
    cap_pid=$!
    sleep 1
    ip netns exec "$ns_ka" timeout 15 keepalived -n -l -D -G -P -f "$here/$name.conf" \
        -p "$work/$name.pid" -r "$work/$name.vrrp.pid" > "$work/$name.log" 2>&1 &
    ka_pid=$!
    wait "$cap_pid" || true
    cap_pid=""
    kill "$ka_pid" 2>/dev/null || true
    wait "$ka_pid" 2>/dev/null || true
    ka_pid=""
    sleep 1
}

common_globals='global_defs {
    router_id golden
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 1
}'

scenario v2_pass_ipv4 8 <<EOF2
$common_globals
vrrp_instance v2pass {
    version 2
    state MASTER
    interface vrrp0
    virtual_router_id 51
    priority 150
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass longpassword
    }
    virtual_ipaddress {
        192.0.2.100/24
        192.0.2.101/24
    }
}
EOF2

scenario v3_ipv4 8 <<EOF2
$common_globals
vrrp_instance v3ipv4 {
    version 3
    state MASTER
    interface vrrp0
    virtual_router_id 52
    priority 200
    advert_int 0.5
    virtual_ipaddress {
        192.0.2.110/24
    }
}
EOF2

scenario v3_ipv4_unicast 4 <<EOF2
$common_globals
vrrp_instance v3uni {
    version 3
    state MASTER
    interface vrrp0
    virtual_router_id 54
    priority 100
    advert_int 1
    unicast_src_ip 192.0.2.1
    unicast_peer {
        192.0.2.2
    }
    virtual_ipaddress {
        192.0.2.120/24
    }
}
EOF2

scenario v3_ipv6 8 <<EOF2
$common_globals
vrrp_instance v3ipv6 {
    version 3
    state MASTER
    interface vrrp0
    virtual_router_id 53
    priority 120
    advert_int 1
    virtual_ipaddress {
        fe80::53/64
        2001:db8::53/64
    }
}
EOF2

cp "$work"/*.pcap "$here/"
python3 "$here/extract.py" "$here"
