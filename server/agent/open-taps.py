#!/usr/bin/env python3
"""Starts QEMU with the taps of its network cards, which Node cannot make.

A tap is made by opening /dev/net/tun and naming the device with the TUNSETIFF ioctl;
Node has no ioctl. The agent starts this helper (as root, with QEMU's files already at
descriptors 3, 4, ...) instead of QEMU:

    open-taps.py '{"uid": 64001, "gid": 64001, "taps": [{"tap": "ght…", "bridge": "gh-…", "fd": 9}]}' qemu-system-x86_64 ...

For each tap it makes the device (not persistent: it goes when the last descriptor
closes, that is when QEMU exits), joins it to the bridge, brings it up and moves its
descriptor to `fd`. A tap with a "vlan" (a bridged network's VLAN-filtering bridge) is
made that VLAN's untagged port, with no other VLAN (the bridge's default one goes). A tap
with "inMbit" shapes what reaches its guest to that rate (a tbf queue: the bridge's frames
wait rather than drop, so TCP keeps to the rate; what the guest sends is policed by the
network's nftables rules instead, as this kernel has no ingress shaping). Then it drops to
QEMU's user (no supplementary groups) and becomes
QEMU (exec: the same process, so the pid the agent knows is QEMU's). Any failure exits
126 with the reason on stderr, which the agent shows.
"""
import fcntl
import json
import os
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000


def run(command, *args):
    done = subprocess.run([command, *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"{command} {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def only_vlan(name, vlan):
    """The port's one VLAN: `vlan`, untagged and its PVID; every other VLAN it has goes."""
    run("bridge", "vlan", "add", "dev", name, "vid", str(vlan), "pvid", "untagged")
    listed = json.loads(run("bridge", "-j", "vlan", "show", "dev", name) or "[]")
    for port in listed:
        for entry in port.get("vlans", []):
            first, last = entry["vlan"], entry.get("vlanEnd", entry["vlan"])
            for vid in range(first, last + 1):
                if vid != vlan:
                    run("bridge", "vlan", "del", "dev", name, "vid", str(vid))


def shape(name, mbit):
    """What leaves the tap towards the guest, at most `mbit` Mbit/s: a token bucket with a
    tenth of a second's bytes (at least 32 KiB) of burst and 100 ms of queue."""
    burst = max(32 * 1024, mbit * 125_000 // 10)
    run("tc", "qdisc", "replace", "dev", name, "root", "tbf", "rate", f"{mbit}mbit", "burst", str(burst), "latency", "100ms")


def open_tap(name, bridge, fd, vlan=None, in_mbit=None):
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    # The device exists now; a guest's frames flow once it is on the bridge (in its VLAN) and up.
    run("ip", "link", "set", "dev", name, "master", bridge)
    if vlan is not None:
        only_vlan(name, vlan)
    if in_mbit is not None:
        shape(name, in_mbit)
    run("ip", "link", "set", "dev", name, "up")
    if tun != fd:
        os.dup2(tun, fd)  # inheritable, unlike tun
        os.close(tun)
    else:
        os.set_inheritable(fd, True)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: open-taps.py <JSON {uid, gid, taps}> <QEMU> <arguments>...")
    plan = json.loads(sys.argv[1])
    try:
        for tap in plan["taps"]:
            open_tap(tap["tap"], tap["bridge"], tap["fd"], tap.get("vlan"), tap.get("inMbit"))
        if plan.get("uid") is not None and plan["uid"] != os.getuid():
            os.setgroups([])
            os.setgid(plan["gid"])
            os.setuid(plan["uid"])
        os.execvp(sys.argv[2], sys.argv[2:])
    except Exception as err:  # noqa: BLE001 -- every failure is reported the same way
        print(f"the network cards' taps could not be made: {err}", file=sys.stderr)
        sys.exit(126)


if __name__ == "__main__":  # server/agent/add-tap.py imports open_tap
    main()
