"""API clients for the benchmarks, one process each (they do not share the server's
interpreter), started before the clock runs: each imports the standard library only, says
"ready", waits for "go" on stdin, does its work and prints one JSON line. Spawned multiprocessing workers
re-imported the benchmark (floatip, SQLAlchemy, pyroute2): 8 of them took ~6 s of the
measured time on 2 cores. A client in the server's own process measured the server with
its GIL shared: httpx's own CPU and a connect loop spinning beside the API thread. The
clients speak HTTP/1.1 with keep-alive through http.client: httpx spent ~2-3 ms of CPU per
request, which 8 clients on this 2-CPU machine took from the server they measure (a client
of a real cloud runs elsewhere).

    python api_clients.py URL  < {"op": "pairs", "ext": ID, "nets": [...], "idx": [...]}
    python api_clients.py URL  < {"op": "delete", "pairs": [[port, fip], ...]}
    python api_clients.py URL  < {"op": "post", "ext": ID, "n": N}       (allocate only)
    python api_clients.py URL  < {"op": "list", "n": N}
    python api_clients.py URL  < {"op": "first_tcp", "ext": ID, "port": ID, "ns": NS,
                                  "tcp_port": 8080}   (one sample per "go" line: Probe)
"""
from __future__ import annotations

import ctypes
import http.client
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

CLONE_NEWNET = 0x40000000


class Response:
    def __init__(self, status: int, body: bytes):
        self.status_code, self.body = status, body

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}: {self.body[:300]!r}")

    def json(self):
        return json.loads(self.body)


class Client:
    """The API over one kept-alive connection (what the clients need of httpx's interface)."""

    def __init__(self, url: str, timeout: float = 120):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)

    def request(self, method: str, path: str, body=None, params=None) -> Response:
        if params:
            path += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(method, path, data,
                          {"Content-Type": "application/json"} if data is not None else {})
        r = self.conn.getresponse()
        return Response(r.status, r.read())

    def post(self, path: str, json=None) -> Response:  # noqa: A002 - httpx's name
        return self.request("POST", path, json)

    def get(self, path: str, params=None) -> Response:
        return self.request("GET", path, params=params)

    def delete(self, path: str) -> Response:
        return self.request("DELETE", path)

    def close(self) -> None:
        self.conn.close()


def make_pairs(c: Client, ext: str, nets: list[str], idx: list[int]) -> dict:
    """Port + floating IP pairs; the POST floatingip latencies."""
    out, lat = [], []
    for i in idx:
        r = c.post("/v2.0/ports", json={"port": {"network_id": nets[i % len(nets)]}})
        r.raise_for_status()
        pid = r.json()["port"]["id"]
        t0 = time.perf_counter()
        r = c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ext,
                                                             "port_id": pid}})
        r.raise_for_status()
        lat.append(time.perf_counter() - t0)
        out.append((pid, r.json()["floatingip"]["id"]))
    return {"pairs": out, "lat": lat}


def delete_pairs(c: Client, pairs: list) -> dict:
    for pid, fid in pairs:
        c.delete(f"/v2.0/floatingips/{fid}").raise_for_status()
        c.delete(f"/v2.0/ports/{pid}").raise_for_status()
    return {}


def post_fips(c: Client, ext: str, n: int) -> dict:
    """POST floatingip (allocate only) ``n`` times, one after the other."""
    lat, ids = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        r = c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ext}})
        r.raise_for_status()
        lat.append(time.perf_counter() - t0)
        ids.append(r.json()["floatingip"]["id"])
    return {"lat": lat, "ids": ids}


def list_fips(c: Client, n: int) -> dict:
    """GET every floating IP (3 times) and the first page of 10 (``n`` times)."""
    full, page = [], []
    for params, out, times in (({}, full, 3), ({"limit": 10}, page, n)):
        for _ in range(times):
            t0 = time.perf_counter()
            c.get("/v2.0/floatingips", params=params).raise_for_status()
            out.append(time.perf_counter() - t0)
    return {"full": full, "page": page}


class Connector:
    """A thread inside a network namespace: connect to ip:port until it works (a SYN that
    finds no DNAT yet is retried after 20 ms, as a new connection)."""

    def __init__(self, ns: str):
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, args=(ns,), daemon=True).start()

    def _run(self, ns: str) -> None:
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:  # this thread only
            if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        while True:
            ip, port, deadline, box, done = self.q.get()
            tries = []
            while time.monotonic() < deadline:
                s = socket.socket()
                s.settimeout(0.02)
                t = time.perf_counter()
                try:
                    s.connect((ip, port))
                    box.append(time.perf_counter())
                    break
                except OSError as e:
                    tries.append((t, type(e).__name__))
                    time.sleep(0.0005)
                finally:
                    s.close()
            box.append(tries)
            done.set()

    def first_connect(self, ip: str, port: int, timeout: float = 10.0) -> float | None:
        box: list = []
        done = threading.Event()
        self.q.put((ip, port, time.monotonic() + timeout, box, done))
        done.wait()
        self.tries = box[-1]
        return box[0] if len(box) > 1 else None


def first_tcp(c: Client, job: dict) -> None:
    """One sample per "go" line: POST floatingip with port_id, then connect through it until
    it works; prints {"id", "api", "tcp", "sent"} (seconds; ``sent``: wall clock)."""
    conn = Connector(job["ns"])
    body = {"floatingip": {"floating_network_id": job["ext"], "port_id": job["port"]}}
    while sys.stdin.readline().strip() == "go":
        sent, t0 = time.time(), time.perf_counter()
        r = c.post("/v2.0/floatingips", json=body)
        r.raise_for_status()
        api = time.perf_counter() - t0
        f = r.json()["floatingip"]
        t1 = conn.first_connect(f["floating_ip_address"], job["tcp_port"])
        print(json.dumps({"id": f["id"], "api": api, "sent": sent,
                          "tcp": None if t1 is None else t1 - t0,
                          "failed": [(t - t0, e) for t, e in conn.tries]}), flush=True)


def main() -> None:
    job = json.loads(sys.stdin.readline())
    c = Client(sys.argv[1])
    try:
        c.get("/").raise_for_status()  # connected before the clock runs
        print("ready", flush=True)
        if job["op"] == "first_tcp":
            return first_tcp(c, job)
        sys.stdin.readline()  # go
        if job["op"] == "pairs":
            res = make_pairs(c, job["ext"], job["nets"], job["idx"])
        elif job["op"] == "post":
            res = post_fips(c, job["ext"], job["n"])
        elif job["op"] == "list":
            res = list_fips(c, job["n"])
        else:
            res = delete_pairs(c, job["pairs"])
    finally:
        c.close()
    print(json.dumps(res), flush=True)


class Probe:
    """A client process driven one sample at a time (``first_tcp``)."""

    def __init__(self, url: str, job: dict):
        self.p = subprocess.Popen([sys.executable, __file__, url], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.p.stdin.write(json.dumps(job) + "\n")
        self.p.stdin.flush()
        if self.p.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the client did not start")

    def sample(self) -> dict:
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("the client failed")
        return json.loads(line)

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def run(url: str, jobs: list[dict]) -> tuple[list[dict], float]:
    """One client process per job, all started, then let go together: (their results,
    seconds from "go" until the last finished)."""
    procs = [subprocess.Popen([sys.executable, __file__, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in jobs]
    try:
        for p, job in zip(procs, jobs):
            p.stdin.write(json.dumps(job) + "\n")
            p.stdin.flush()
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a client did not start")
        t0 = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        out = []
        for p in procs:
            line = p.stdout.readline()
            if p.wait() != 0 or not line:
                raise RuntimeError("a client failed")
            out.append(json.loads(line))
        return out, time.perf_counter() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
