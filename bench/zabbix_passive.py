"""Polling a Zabbix agent the way a Zabbix server does: passive checks of a template's items.

The protocol is what ``zabbix_get`` speaks (Debian 12 ships no zabbix-get package): open a TCP
connection to the agent, send ``ZBXD\\x01`` + data length (uint32 LE) + 4 reserved bytes + the item
key, read the same header and the value until the agent closes the connection.

The items are those of the template "Linux by Zabbix agent" as shipped with Zabbix 6.0
(templates/os/linux/template_os_linux.yaml, with its linked modules "Linux CPU / filesystems /
generic / memory / network interfaces / block devices by Zabbix agent" and "Zabbix agent"), each at
its default update interval (1 min where the template gives none). Items of type DEPENDENT or
CALCULATED are computed by the server from other items and never reach the agent, so they are not
polled. Low-level discovery runs once against the agent, its results are filtered with the
template's default macros, and the item prototypes are created for what was found.

Scheduling follows the Zabbix server: an item with delay ``d`` is due at ``d * k + offset`` in
epoch seconds, the offset spread by item (here: CRC32 of the key mod ``d``), so items of one
interval do not all fire at once and items slower than a run contribute their expected share.
"""

from __future__ import annotations

import heapq
import json
import random
import re
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass

HEADER = b"ZBXD\x01"
NOT_SUPPORTED = "ZBX_NOTSUPPORTED"

M, H = 60, 3600
#: (key, default update interval in seconds) of the template's items the agent answers.
ITEMS: list[tuple[str, int]] = [
    # Zabbix agent
    ("agent.hostname", H),
    ("agent.ping", M),
    ("agent.version", H),
    # Linux CPU by Zabbix agent
    ("system.cpu.intr", M),
    ("system.cpu.load[all,avg1]", M),
    ("system.cpu.load[all,avg5]", M),
    ("system.cpu.load[all,avg15]", M),
    ("system.cpu.num", M),
    ("system.cpu.switches", M),
    *(
        (f"system.cpu.util[,{mode}]", M)
        for mode in ("guest", "guest_nice", "idle", "interrupt", "iowait", "nice", "softirq", "steal", "system", "user")
    ),
    # Linux generic by Zabbix agent
    ("kernel.maxfiles", H),
    ("kernel.maxproc", H),
    ("proc.num", M),
    ("proc.num[,,run]", M),
    ("system.boottime", 15 * M),
    ("system.hostname", H),
    ("system.localtime", M),
    ("system.sw.arch", H),
    ("system.sw.os", H),
    ("system.sw.packages", H),
    ("system.uname", 15 * M),
    ("system.uptime", 30),
    ("system.users.num", M),
    ("vfs.file.cksum[/etc/passwd,sha256]", 15 * M),
    # Linux memory by Zabbix agent
    ("system.swap.size[,free]", M),
    ("system.swap.size[,pfree]", M),
    ("system.swap.size[,total]", M),
    ("vm.memory.size[available]", M),
    ("vm.memory.size[pavailable]", M),
    ("vm.memory.size[total]", M),
    # discovery rules (each also polled at its own interval)
    ("net.if.discovery", H),
    ("vfs.fs.discovery", H),
    ("vfs.dev.discovery", H),
]

#: Default filter macros of the template's discovery rules.
IFNAME_NOT_MATCHES = (
    r"(^Software Loopback Interface|^NULL[0-9.]*$|^[Ll]o[0-9.]*$|^[Ss]ystem$|^Nu[0-9.]*$"
    r"|^veth[0-9A-z]+$|docker[0-9]+|br-[a-z0-9]{12})"
)
FSTYPE_MATCHES = r"^(btrfs|ext2|ext3|ext4|reiser|xfs|ffs|ufs|jfs|jfs2|vxfs|hfs|apfs|refs|ntfs|fat32|zfs)$"
FSNAME_NOT_MATCHES = r"^(/dev|/sys|/run|/proc|.+/shm$)"
DEVNAME_NOT_MATCHES = (
    r"^(loop[0-9]*|sd[a-z][0-9]+|nbd[0-9]+|sr[0-9]+|fd[0-9]+|dm-[0-9]+|ram[0-9]+"
    r"|ploop[a-z0-9]+|md[0-9]*|hcp[0-9]*|zram[0-9]*)"
)


CONF = """\
# Passive checks only, from 127.0.0.1; every file in the bench's temp dir.
LogType=file
LogFile={dir}/zabbix_agent2.log
LogFileSize=0
PidFile={dir}/zabbix_agent2.pid
ControlSocket={dir}/control.sock
PluginSocket={dir}/plugin.sock
Server=127.0.0.1
ListenIP=127.0.0.1
ListenPort={port}
ServerActive=
Hostname={hostname}
"""


def free_port() -> int:
    """A free 127.0.0.1 port that zabbix_agent2 accepts (its ListenPort must be 1024-32767)."""
    for port in random.sample(range(20000, 32768), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 20000-32767 on 127.0.0.1 for zabbix_agent2")


def get(port: int, key: str, host: str = "127.0.0.1", timeout: float = 10.0) -> str:
    """One passive check: the agent's answer to ``key`` (``ZBX_NOTSUPPORTED\\0reason`` included)."""
    data = key.encode()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(HEADER + struct.pack("<II", len(data), 0) + data)
        reply = bytearray()
        while chunk := sock.recv(65536):
            reply += chunk
    if reply[:5] != HEADER or len(reply) < 13:
        raise ConnectionError(f"zabbix agent on {host}:{port} answered {bytes(reply[:20])!r} to {key!r}")
    length = struct.unpack("<I", reply[5:9])[0]
    return reply[13 : 13 + length].decode(errors="replace")


def _discovered(port: int, key: str) -> list[dict]:
    value = get(port, key)
    return [] if value.startswith(NOT_SUPPORTED) else json.loads(value)


def template_items(port: int) -> list[tuple[str, int]]:
    """The template's items plus the item prototypes for what low-level discovery finds here."""
    items = list(ITEMS)
    for row in _discovered(port, "net.if.discovery"):
        name = row["{#IFNAME}"]
        if re.search(IFNAME_NOT_MATCHES, name):
            continue
        items += [(f'net.if.{d}["{name}"{s}]', 3 * M) for d in ("in", "out") for s in ("", ",dropped", ",errors")]
        items += [
            (f'vfs.file.contents["/sys/class/net/{name}/operstate"]', M),
            (f'vfs.file.contents["/sys/class/net/{name}/type"]', H),
        ]
    for row in _discovered(port, "vfs.fs.discovery"):
        name, fstype = row["{#FSNAME}"], row["{#FSTYPE}"]
        if not re.search(FSTYPE_MATCHES, fstype) or re.search(FSNAME_NOT_MATCHES, name):
            continue
        items += [
            (f"vfs.fs.inode[{name},pfree]", M),
            *((f"vfs.fs.size[{name},{m}]", M) for m in ("pused", "total", "used")),
        ]
    for row in _discovered(port, "vfs.dev.discovery"):
        name = row["{#DEVNAME}"]
        if row.get("{#DEVTYPE}") == "disk" and not re.search(DEVNAME_NOT_MATCHES, name):
            items.append((f"vfs.file.contents[/sys/block/{name}/stat]", M))
    return items


def next_check(key: str, delay: int, now: float) -> float:
    """When a Zabbix server would next poll the item: on its own offset within each ``delay``."""
    due = delay * (now // delay) + zlib.crc32(key.encode()) % delay
    return due if due > now else due + delay


@dataclass
class Poll:
    at: float  # time.monotonic()
    key: str
    delay: int
    ok: bool


class Poller(threading.Thread):
    """Polls every item once (first contact, as when a host is added), then each on its schedule."""

    def __init__(self, port: int, items: list[tuple[str, int]]) -> None:
        super().__init__(name="zabbix-poller", daemon=True)
        self.port = port
        self.items = items
        self.stop_event = threading.Event()
        self.polls: list[Poll] = []
        self.errors: list[str] = []
        self.unsupported: Counter[str] = Counter()

    def _poll(self, key: str, delay: int) -> None:
        try:
            value = get(self.port, key)
        except OSError as exc:
            self.errors.append(f"{key}: {exc}")
            self.polls.append(Poll(time.monotonic(), key, delay, False))
            return
        if value.startswith(NOT_SUPPORTED):
            self.unsupported[key] += 1
        self.polls.append(Poll(time.monotonic(), key, delay, True))

    def run(self) -> None:
        for key, delay in self.items:
            if self.stop_event.is_set():
                return
            self._poll(key, delay)
        now = time.time()
        queue = [(next_check(key, delay, now), key, delay) for key, delay in self.items]
        heapq.heapify(queue)
        while not self.stop_event.is_set():
            due, key, delay = queue[0]
            if self.stop_event.wait(max(0.0, due - time.time())):
                return
            heapq.heapreplace(queue, (due + delay, key, delay))
            self._poll(key, delay)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(15)

    def polls_between(self, start: float, end: float) -> Counter[int]:
        """Polls made in [start, end) (monotonic), counted by the item's interval."""
        return Counter(p.delay for p in self.polls if start <= p.at < end)
