#!/usr/bin/env python3
"""Makes the tap of a network card plugged into a running guest and hands it to QEMU.

Node can neither make a tap (the TUNSETIFF ioctl) nor send a descriptor (SCM_RIGHTS), so
the agent (as root) starts this helper:

    add-tap.py <QMP socket> '{"tap": "ght…", "bridge": "gh-…", "fdname": "tap-…", "netdev": "net-…", "vlan": 10, "inMbit": 2}'

It makes the tap exactly as a start does (open_tap of open-taps.py: joined to the bridge,
in its VLAN, shaped, up), connects to the guest's second QMP monitor (the agent holds the
first), hands QEMU the descriptor with `getfd` under `fdname` and makes the card's
backend with `netdev_add` (tap, fd=fdname) on the same monitor: a name getfd gives is
known to that monitor only. The agent then adds the device on its own monitor. The tap is
not persistent: if anything fails before QEMU holds the descriptor, it goes when this
helper exits; if netdev_add fails, the helper closes QEMU's copy (closefd); once the
netdev has it, it goes with the netdev (netdev_del, QEMU's exit). Exits 0 when the netdev
was made; otherwise 1, with QEMU's or the system's words on stderr.
"""
import array
import importlib.util
import json
import os
import socket
import sys

TAP_FD = 3

def _helper(name, file):
    """A sibling helper script as a module (their names have dashes: no plain import)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(os.path.abspath(__file__)), file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The tap is made as at a guest's start; the monitor is spoken to as add-fds.py does.
open_taps = _helper("open_taps", "open-taps.py")
add_fds = _helper("add_fds", "add-fds.py")
reply = add_fds.reply


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: add-tap.py <QMP socket> <JSON {tap, bridge, fdname, vlan?, inMbit?}>")
    path, plan = sys.argv[1], json.loads(sys.argv[2])
    open_taps.open_tap(plan["tap"], plan["bridge"], TAP_FD, plan.get("vlan"), plan.get("inMbit"))
    sock, stream = add_fds.connect(path)
    command = {"execute": "getfd", "arguments": {"fdname": str(plan["fdname"])}}
    fds = array.array("i", [TAP_FD])
    sock.sendmsg([json.dumps(command).encode() + b"\n"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    answer = reply(stream)
    if "error" in answer:
        raise RuntimeError("getfd of %s: %s" % (plan["tap"], answer["error"].get("desc", "refused")))
    command = {"execute": "netdev_add", "arguments": {"type": "tap", "id": str(plan["netdev"]), "fd": str(plan["fdname"])}}
    sock.sendall(json.dumps(command).encode() + b"\n")
    answer = reply(stream)
    if "error" in answer:
        sock.sendall(json.dumps({"execute": "closefd", "arguments": {"fdname": str(plan["fdname"])}}).encode() + b"\n")
        reply(stream)
        raise RuntimeError(answer["error"].get("desc", "netdev_add was refused"))


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # one line for the agent, not a traceback
        print(str(err) or type(err).__name__, file=sys.stderr)
        sys.exit(1)
