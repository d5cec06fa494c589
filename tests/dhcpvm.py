"""A "VM" for DHCP and metadata tests: a namespace whose eth0 is plugged into the integration
bridge the way libvirt/os-vif plugs a tap (``external_ids:iface-id``), configured by a real
DHCP client: ISC ``dhclient`` with a private lease file, pid file and the client script
``dhclient-script`` shipped here (it sets the address, routes and MTU in the namespace only,
and records what the server sent). Every process it starts is killed by its pid."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

SCRIPT = os.path.join(os.path.dirname(__file__), "dhclient-script")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r


class Vm:
    def __init__(self, name: str, bridge: str, mac: str, workdir: str, *,
                 iface_id: str | None = None, tag: int | None = None):
        self.ns, self.veth, self.bridge = name, f"{name}-v"[:15], bridge
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.pids: list[int] = []
        sh("ip", "netns", "add", self.ns)
        try:
            sh("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0",
               "netns", self.ns)
            add = ["ovs-vsctl", "--", "add-port", bridge, self.veth]
            if tag is not None:
                add.append(f"tag={tag}")
            if iface_id:
                add += ["--", "set", "Interface", self.veth,
                        f"external_ids:iface-id={iface_id}", f"external_ids:attached-mac={mac}",
                        "external_ids:iface-status=active"]
            sh(*add)
            sh("ethtool", "-K", self.veth, "tx", "off")
            sh("ip", "link", "set", self.veth, "up")
            self.run("ethtool", "-K", "eth0", "tx", "off")
            self.run("ip", "link", "set", "eth0", "address", mac)
            self.run("ip", "link", "set", "lo", "up")
            self.run("ip", "link", "set", "eth0", "up")
        except Exception:
            self.close()
            raise

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run(["ip", "netns", "exec", self.ns, *argv], capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode:
            raise RuntimeError(f"{' '.join(argv)} in {self.ns}: {r.stderr.strip()}")
        return r

    def dhclient(self, timeout: float = 30) -> dict[str, str]:
        """One DHCP exchange (``dhclient -1``): returns what the client script saw on BOUND
        (new_ip_address, new_routers, new_interface_mtu, ...). dhclient stays in the
        background to renew, as in a VM, until ``close``."""
        env_file = os.path.join(self.dir, "bound.env")
        if os.path.exists(env_file):
            os.unlink(env_file)
        r = subprocess.run(
            ["ip", "netns", "exec", self.ns, "dhclient", "-1", "-4",
             "-lf", os.path.join(self.dir, "lease"), "-pf", os.path.join(self.dir, "pid"),
             "-sf", SCRIPT, "-e", f"FD_ENV_FILE={env_file}", "eth0"],
            capture_output=True, text=True, timeout=timeout)
        self._remember_pid()
        if r.returncode:
            raise RuntimeError(f"dhclient in {self.ns}: {r.stderr.strip()[-500:]}")
        return self.bound()

    def bound(self) -> dict[str, str]:
        out = {}
        with open(os.path.join(self.dir, "bound.env")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                out[k] = v
        return out

    def _remember_pid(self) -> None:
        try:
            with open(os.path.join(self.dir, "pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return
        if pid not in self.pids:
            self.pids.append(pid)

    def spawn(self, *argv: str) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", self.ns, *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.pids.append(p.pid)
        return p

    def close(self) -> None:
        # ours, by id: what we spawned, and whatever runs in this VM's namespace (dhclient
        # forks into the background)
        inside = sh("ip", "netns", "pids", self.ns, check=False).stdout.split()
        self.pids += [int(p) for p in inside if int(p) not in self.pids]
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        for pid in self.pids:
            while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.02)
        sh("ovs-vsctl", "--if-exists", "del-port", self.bridge, self.veth, check=False)
        sh("ip", "link", "delete", self.veth, check=False)
        sh("ip", "netns", "delete", self.ns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
