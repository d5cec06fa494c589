"""Throw-away hosts for the demo and the tests: namespaces wired to OVS bridges by veths,
and probes (ping, TCP with the source address the far end saw).

Everything a Lab creates is recorded and removed by ``cleanup()``, which also runs when the
building failed half-way. Names are the caller's; keep them unique per run.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading

from pyroute2 import netns as pnetns

from .dataplane.netns import run_in_netns


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r


# dhclient's client script for lab hosts: configures the interface inside the namespace
# only (never /etc/resolv.conf or the hostname, which the namespace shares with the host).
DHCLIENT_SCRIPT = """#!/bin/sh
case "$reason" in
PREINIT) ip link set dev "$interface" up ;;
BOUND|RENEW|REBIND|REBOOT)
    [ -n "$new_interface_mtu" ] && ip link set dev "$interface" mtu "$new_interface_mtu"
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    if [ -n "$new_routers" ]; then
        set -- $new_routers
        ip -4 route replace default via "$1" dev "$interface"
    fi ;;
EXPIRE|FAIL|RELEASE|STOP) ip -4 addr flush dev "$interface" ;;
esac
exit 0
"""


class Lab:
    def __init__(self, datapath_type: str = "netdev"):
        self.datapath_type = datapath_type
        self.namespaces: list[str] = []
        self.bridges: list[str] = []
        self.veths: list[str] = []
        self.servers: list[TcpServer] = []
        self.tmp: str | None = None   # dhclient's lease, pid and script files

    def dhcp(self, ns: str, ifname: str = "eth0", timeout: float = 30) -> str | None:
        """Configure ``ifname`` in ``ns`` with ISC dhclient (one exchange, then it stays to
        renew until ``cleanup``); returns the address it got, or None."""
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="floatip-lab-")
            with open(os.path.join(self.tmp, "dhclient-script"), "w") as f:
                f.write(DHCLIENT_SCRIPT)
            os.chmod(os.path.join(self.tmp, "dhclient-script"), 0o755)
        files = os.path.join(self.tmp, f"{ns}-{ifname}")
        try:
            r = subprocess.run(["ip", "netns", "exec", ns, "dhclient", "-1", "-4",
                                "-lf", files + ".lease", "-pf", files + ".pid",
                                "-sf", os.path.join(self.tmp, "dhclient-script"), ifname],
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode:
            return None
        out = sh("ip", "netns", "exec", ns, "ip", "-4", "-o", "addr", "show", "dev", ifname).stdout
        return out.split()[3].split("/")[0] if out.split() else None

    def bridge(self, name: str) -> str:
        sh("ovs-vsctl", "--may-exist", "add-br", name, "--", "set", "bridge", name,
           f"datapath_type={self.datapath_type}")
        self.bridges.append(name)
        sh("ip", "link", "set", name, "up", check=False)
        return name

    def host(self, ns: str, bridge: str, port: str, cidr: str, gateway: str | None = None,
             tag: int | None = None, mac: str | None = None, arp_accept: bool = False) -> str:
        """A namespace ``ns`` with eth0 (``cidr``) on ``bridge`` through the veth ``port``."""
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.veths.append(port)
        add = ["ovs-vsctl", "add-port", bridge, port]
        if tag is not None:
            add += ["tag=" + str(tag)]
        sh(*add)
        # OVS' userspace datapath passes partial checksums through: offload off on both ends.
        sh("ethtool", "-K", port, "tx", "off")
        sh("ip", "link", "set", port, "up")
        inns = ["ip", "netns", "exec", ns]
        sh(*inns, "ethtool", "-K", "eth0", "tx", "off")
        if mac:
            sh(*inns, "ip", "link", "set", "eth0", "address", mac)
        sh(*inns, "ip", "link", "set", "lo", "up")
        sh(*inns, "ip", "link", "set", "eth0", "up")
        sh(*inns, "ip", "addr", "add", cidr, "dev", "eth0")
        if gateway:
            sh(*inns, "ip", "route", "add", "default", "via", gateway)
        if arp_accept:
            sh(*inns, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_accept=1")
        return ns

    @staticmethod
    def add_ipv6(ns: str, cidr: str, routes: tuple[tuple[str, str], ...] = (),
                 dev: str = "eth0") -> None:
        """A static IPv6 address (no DAD: usable at once) and routes ``(dest, via)`` on a lab
        host, as the upstream router of an IPv6 external network has them."""
        inns = ["ip", "netns", "exec", ns]
        sh(*inns, "ip", "-6", "addr", "add", cidr, "dev", dev, "nodad")
        for dest, via in routes:
            sh(*inns, "ip", "-6", "route", "replace", dest, "via", via, "dev", dev)

    def serve(self, ns: str, ip: str = "0.0.0.0", port: int = 8080) -> "TcpServer":
        srv = TcpServer(ns, ip, port)
        self.servers.append(srv)
        return srv

    def cleanup(self) -> list[str]:
        """Remove everything this lab made; returns what could not be removed."""
        left = []
        for srv in self.servers:
            srv.close()
        for ns in reversed(self.namespaces):
            for pid in pnetns.ns_pids().get(ns, []):  # processes started in it, by id
                sh("kill", str(pid), check=False)
            if sh("ip", "netns", "delete", ns, check=False).returncode:
                left.append(ns)
        for v in self.veths:
            sh("ip", "link", "delete", v, check=False)
        for br in reversed(self.bridges):
            if sh("ovs-vsctl", "--if-exists", "del-br", br, check=False).returncode:
                left.append(br)
        self.namespaces, self.veths, self.bridges, self.servers = [], [], [], []
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        return left


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def ping(ns: str, ip: str, count: int = 1, timeout: float = 1.0) -> bool:
    r = sh("ip", "netns", "exec", ns, "ping", "-n", "-q", "-c", str(count), "-W", str(timeout),
           "-i", "0.2", ip, check=False)
    return r.returncode == 0


def ping_until(ns: str, ip: str, tries: int = 10) -> bool:
    return any(ping(ns, ip, timeout=0.5) for _ in range(tries))


class TcpServer:
    """Accepts in ``ns``; to each client it first sends the address it saw the client come
    from, then echoes lines back."""

    def __init__(self, ns: str, ip: str, port: int):
        def make():
            s = socket.socket(_family(ip), socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((ip, port))
            s.listen(64)
            return s
        self.sock = run_in_netns(ns, make)
        self.port = port
        self.peers: list[str] = []
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, addr = self.sock.accept()
                peer = addr[0]
            except OSError:
                return
            self.peers.append(peer)
            self.conns.append(conn)
            threading.Thread(target=self._echo, args=(conn, peer), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket, peer: str):
        try:
            conn.sendall(f"{peer}\n".encode())
            while data := conn.recv(4096):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class TcpClient:
    """A connection from ``ns``; ``seen`` is the source address the server reported."""

    def __init__(self, ns: str, ip: str, port: int, timeout: float = 2.0):
        self.sock = run_in_netns(ns, socket.socket, _family(ip), socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((ip, port))
        self.file = self.sock.makefile("rb")
        self.seen = self.file.readline().decode().strip()

    def echo(self, text: str = "ping") -> bool:
        """True when the text comes back over the same connection."""
        try:
            self.sock.sendall(text.encode() + b"\n")
            return self.file.readline().decode().strip() == text
        except OSError:
            return False

    def close(self):
        self.file.close()
        self.sock.close()


def http_get(ns: str, ip: str, path: str, port: int = 80, timeout: float = 3.0,
             src: str | None = None) -> tuple[int, str]:
    """GET ``path`` from ``ns`` (a socket opened there, bound to ``src`` if given): (status,
    body); (0, error) when the connection fails."""
    try:
        s = run_in_netns(ns, socket.socket, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as e:
        return 0, str(e)
    try:
        s.settimeout(timeout)
        if src:
            s.bind((src, 0))
        s.connect((ip, port))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    except OSError as e:
        return 0, str(e)
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return int(head.split()[1]), body.decode(errors="replace")
    except (IndexError, ValueError):
        return 0, "bad response"


def tcp_source(ns: str, ip: str, port: int, timeout: float = 2.0) -> str | None:
    """Connect from ``ns`` and return the source address the server saw, or None."""
    try:
        c = TcpClient(ns, ip, port, timeout)
    except OSError:
        return None
    try:
        return c.seen
    finally:
        c.close()
