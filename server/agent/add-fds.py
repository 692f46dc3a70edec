#!/usr/bin/env python3
"""Hands QEMU file descriptors over QMP, which Node cannot do.

QEMU takes a descriptor only with its `add-fd` command, the descriptor riding along as
SCM_RIGHTS ancillary data on the monitor's unix socket; Node's sockets cannot send
that. The agent opens the files itself, starts this helper with them as its own
descriptors 3, 4, ..., and names them in its arguments:

    add-fds.py <QMP socket> '[{"fd": 3, "set": 7, "opaque": "read-write:/srv/a.qcow2"}, ...]'

It connects to the guest's second QMP monitor (the agent holds the first), sends one
`add-fd` per descriptor, and prints QEMU's answers as JSON lines. It exits 0 when QEMU
took every descriptor; otherwise 1, with QEMU's or the system's words on stderr.
"""
import array
import json
import socket
import sys

TIMEOUT_SECONDS = 10


def reply(stream):
    """The next line that answers a command (events are skipped)."""
    while True:
        line = stream.readline()
        if not line:
            raise RuntimeError("QEMU closed the monitor")
        message = json.loads(line)
        if "event" not in message:
            return message


def connect(path):
    """A QMP monitor at `path`, past its greeting and in command mode: (socket, its line reader)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT_SECONDS)
    sock.connect(path)
    stream = sock.makefile("rb")
    if "QMP" not in json.loads(stream.readline()):
        raise RuntimeError("the socket does not speak QMP")
    sock.sendall(b'{"execute": "qmp_capabilities"}\n')
    answer = reply(stream)
    if "error" in answer:
        raise RuntimeError(answer["error"].get("desc", "qmp_capabilities was refused"))
    return sock, stream


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: add-fds.py <QMP socket> <JSON list of {fd, set, opaque}>")
    path, wanted = sys.argv[1], json.loads(sys.argv[2])
    sock, stream = connect(path)
    for item in wanted:
        command = {"execute": "add-fd", "arguments": {"fdset-id": int(item["set"]), "opaque": str(item["opaque"])}}
        fds = array.array("i", [int(item["fd"])])
        sock.sendmsg([json.dumps(command).encode() + b"\n"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        answer = reply(stream)
        if "error" in answer:
            raise RuntimeError("add-fd of %s: %s" % (item["opaque"], answer["error"].get("desc", "refused")))
        print(json.dumps(answer["return"]), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as err:  # one line for the agent, not a traceback
        print(str(err) or type(err).__name__, file=sys.stderr)
        sys.exit(1)
