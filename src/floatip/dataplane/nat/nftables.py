"""The nftables NAT driver: one table ``ip floatip`` per router namespace, static chains and
rules, and the floating IPs as map elements (kube-proxy's "static rules, dynamic maps").

Layout (the same meaning as iptables.py renders with Neutron's chains)::

  map fip_dnat  floating ip -> fixed ip     used by nat_prerouting and nat_output (DNAT)
  map fip_snat  fixed ip -> floating ip     used by nat_postrouting (float-SNAT)
  map pf_dnat_port  floating ip . protocol . port -> fixed ip . port (a hash)
  map pf_dnat   floating ip . protocol . port range -> fixed ip . port (interval: N to 1)
                                            port forwardings: DNAT in nat_prerouting and
                                            nat_output, replies by conntrack
  set snat_nets tenant subnets              SNATed to the gateway IP (fully-random)
  mangle_prerouting  mark 0x2 what came in by the gateway, 0x1 metadata requests from qr-*
  filter_input       accept metadata-marked, drop other traffic to 9697
  nat_prerouting     metadata 169.254.169.254:80 from qr-* -> :9697, then the FIP map
  nat_postrouting    no NAT unless leaving by the gateway or DNATed, float-SNAT map,
                     subnet SNAT, hairpin SNAT of DNATed traffic that did not come from outside

Every lookup is one hash lookup whatever the number of floating IPs; adding one is two
element adds in one transaction. Only the table ``ip floatip`` is ever named: tables of
anyone else in the namespace are never read for changes nor touched.

The pure half (``render``, ``parse``, ``diff_script``, ``element_script``) needs no root;
the shell half (``NftablesDriver``) runs scripts through libnftables in-process (one
netlink transaction, no process start) and falls back to ``nft -f -``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import re
import socket
import struct
import threading
from dataclasses import dataclass, field

from ...core.layout import Forward, NatSpec, forward_elements
from ...core.plan import Step
from ..netns import high_socket, nsexec, run_in_netns

FAMILY, TABLE = "ip", "floatip"
T = f"{FAMILY} {TABLE}"
METADATA_IP = "169.254.169.254"
METADATA_PORT = 9697
DNAT_MAP, SNAT_MAP, NETS, PF_MAP = "fip_dnat", "fip_snat", "snat_nets", "pf_dnat"
PF_PORT_MAP = "pf_dnat_port"

# Set declarations exactly as ``nft list`` prints them (kind, name) -> body lines.
SETS: dict[tuple[str, str], tuple[str, ...]] = {
    ("map", DNAT_MAP): ("type ipv4_addr : ipv4_addr",),
    ("map", SNAT_MAP): ("type ipv4_addr : ipv4_addr",),
    ("set", NETS): ("type ipv4_addr", "flags interval"),
    # single external ports (a forwarding, or a port of an N-N range): a hash map, looked
    # up in constant time. In the interval map below, a concatenation with ranges (nft's
    # pipapo), new flows through 1,000 forwardings ran at ~70 % of through 10 (a hash: ~100 %)
    ("map", PF_PORT_MAP): ("type ipv4_addr . inet_proto . inet_service : ipv4_addr . "
                           "inet_service",),
    # an interval key: a forwarding of a port range to one port is one element
    ("map", PF_MAP): ("type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service",
                      "flags interval"),
}
PF_PORT_RULE = ("meta l4proto { tcp, udp } dnat ip to ip daddr . meta l4proto . th dport "
                f"map @{PF_PORT_MAP}")
PF_RULE = f"meta l4proto {{ tcp, udp }} dnat ip to ip daddr . meta l4proto . th dport map @{PF_MAP}"
HEADERS = {
    "mangle_prerouting": "type filter hook prerouting priority mangle; policy accept;",
    "filter_input": "type filter hook input priority filter; policy accept;",
    "nat_prerouting": "type nat hook prerouting priority dstnat; policy accept;",
    "nat_output": "type nat hook output priority -100; policy accept;",
    "nat_postrouting": "type nat hook postrouting priority srcnat; policy accept;",
}
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclass
class NftTable:
    """floatip's table, desired or observed: the same shape on both sides so they compare.
    ``chain_rules``: name -> (hook header, *rules), rules as ``nft list`` prints them."""
    present: bool = False
    sets: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    chain_rules: dict[str, tuple[str, ...]] = field(default_factory=dict)
    nets: frozenset[str] = frozenset()           # collapsed CIDRs of snat_nets
    dnat: dict[str, str] = field(default_factory=dict)   # floating ip -> fixed ip
    snat: dict[str, str] = field(default_factory=dict)   # fixed ip -> floating ip
    fwd: dict[Forward, tuple[str, int]] = field(default_factory=dict)  # pf_dnat

    def fip_map(self) -> dict[str, str]:
        return dict(self.dnat)

    def text(self) -> str:
        """The table as nft prints it (for ``floatip show``)."""
        return render_script(self) if self.present else ""

    def copy(self) -> "NftTable":
        return NftTable(self.present, dict(self.sets), dict(self.chain_rules), self.nets,
                        dict(self.dnat), dict(self.snat), dict(self.fwd))


def _ip(text: str) -> str:
    """A dotted-quad IPv4 address in canonical form (nothing else reaches an nft script)."""
    try:
        return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text))
    except (OSError, TypeError) as e:
        raise ValueError(f"not an IPv4 address: {text!r}") from e


def collapse(cidrs) -> frozenset[str]:
    nets = []
    for c in cidrs:
        if "-" in c:  # a range as nft may print a non-prefix interval
            lo, hi = c.split("-", 1)
            nets += ipaddress.summarize_address_range(ipaddress.IPv4Address(lo.strip()),
                                                      ipaddress.IPv4Address(hi.strip()))
        else:
            nets.append(ipaddress.IPv4Network(c.strip(), strict=False))
    return frozenset(str(n) for n in ipaddress.collapse_addresses(nets))


# ---------------------------------------------------------------------------------------
# Desired table from a NatSpec.

def render(spec: NatSpec, fully_random: bool = True) -> NftTable:
    rf = " fully-random" if fully_random else ""
    qg = spec.gateway_device
    if qg is not None and not _IFNAME.match(qg):
        raise ValueError(f"bad gateway device name {qg!r}")
    meta = f'ip daddr {METADATA_IP} iifname "qr-*" tcp dport 80'
    mangle = []
    if qg:
        mangle.append(f'iifname "{qg}" meta mark set meta mark & 0xffff0002 | 0x00000002')
    mangle.append(f"{meta} meta mark set meta mark & 0xffff0001 | 0x00000001")
    post: list[str] = []
    gw = _ip(spec.gateway_ip) if qg and spec.gateway_ip else None
    if qg:
        post.append(f'oifname != "{qg}" ct status ! dnat accept')
    post.append(f"snat to ip saddr map @{SNAT_MAP}")
    if qg and gw and spec.snat_cidrs:
        post.append(f'ip saddr @{NETS} oifname "{qg}" snat to {gw}{rf}')
        post.append(f"meta mark & 0x0000ffff != 0x00000002 ct status dnat snat to {gw}{rf}")
    chains = {
        "mangle_prerouting": mangle,
        "filter_input": ["meta mark & 0x0000ffff == 0x00000001 accept",
                         f"tcp dport {METADATA_PORT} drop"],
        "nat_prerouting": [f"{meta} redirect to :{METADATA_PORT}", PF_PORT_RULE, PF_RULE,
                           f"dnat to ip daddr map @{DNAT_MAP}"],
        "nat_output": [PF_PORT_RULE, PF_RULE, f"dnat to ip daddr map @{DNAT_MAP}"],
        "nat_postrouting": post,
    }
    dnat: dict[str, str] = {}
    snat: dict[str, str] = {}
    for fip, fixed in spec.fips:  # sorted by floating ip: the first one wins a fixed ip,
        fip, fixed = _ip(fip), _ip(fixed)  # as the first iptables rule would
        dnat[fip] = fixed
        snat.setdefault(fixed, fip)
    fwd = {(_ip(f), p, lo, hi): (_ip(x), port)
           for (f, p, lo, hi), (x, port) in forward_elements(spec.forwards).items()}
    return NftTable(True, dict(SETS), {n: (HEADERS[n], *r) for n, r in chains.items()},
                    collapse(spec.snat_cidrs) if qg and gw else frozenset(), dnat, snat, fwd)


def _fwd_key(k: Forward) -> str:
    fip, proto, lo, hi = k
    if proto not in ("tcp", "udp"):
        raise ValueError(f"bad protocol {proto!r}")
    return f"{_ip(fip)} . {proto} . {int(lo)}" + (f"-{int(hi)}" if hi != lo else "")


def _fwd_element(k: Forward, v: tuple[str, int]) -> str:
    return f"{_fwd_key(k)} : {_ip(v[0])} . {int(v[1])}"


def _fwd_map(k: Forward) -> str:
    """The map holding a forwarding element: one port in the hash map, a range in the
    interval map."""
    return PF_PORT_MAP if k[2] == k[3] else PF_MAP


def _elements(kind: str, name: str, t: NftTable) -> list[str]:
    if name == DNAT_MAP:
        return [f"{k} : {v}" for k, v in t.dnat.items()]
    if name == SNAT_MAP:
        return [f"{k} : {v}" for k, v in t.snat.items()]
    if name in (PF_MAP, PF_PORT_MAP):
        return [_fwd_element(k, v) for k, v in t.fwd.items() if _fwd_map(k) == name]
    return sorted(t.nets, key=lambda c: ipaddress.IPv4Network(c))


def render_script(t: NftTable, elements: bool = True) -> str:
    """The whole table as one ``nft -f`` block (also the way nft prints it)."""
    out = [f"table {T} {{"]
    for (kind, name), body in t.sets.items():
        out.append(f"\t{kind} {name} {{")
        out += [f"\t\t{line}" for line in body]
        els = _elements(kind, name, t) if elements else []
        if els:
            out.append("\t\telements = { " + ", ".join(els) + " }")
        out.append("\t}")
    for name, (header, *rules) in t.chain_rules.items():
        out.append(f"\tchain {name} {{")
        out.append(f"\t\t{header}")
        out += [f"\t\t{r}" for r in rules]
        out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------
# Observed table from ``nft list table ip floatip``.

def parse(text: str) -> NftTable:
    t = NftTable()
    if not text.strip():
        return t
    t.present = True
    block: tuple[str, str] | None = None   # ("set"/"map"/"chain", name)
    body: list[str] = []
    elements: list[str] = []
    collecting = False
    for raw in text.splitlines():
        line = raw.split(" # handle")[0].strip()
        if not line:
            continue
        if collecting:
            elements.append(line)
            if line.endswith("}"):
                collecting = False
            continue
        if block is None:
            m = re.match(r"^(set|map|chain) (\S+) \{$", line)
            if m:
                block, body, elements = (m.group(1), m.group(2)), [], []
            continue
        if line == "}":
            kind, name = block
            if kind == "chain":
                t.chain_rules[name] = tuple(body)
            else:
                t.sets[(kind, name)] = tuple(body)
                _set_elements(t, name, " ".join(elements))
            block = None
            continue
        if line.startswith("elements = {"):
            elements = [line]
            collecting = not line.endswith("}")
            continue
        body.append(line)
    return t


def _set_elements(t: NftTable, name: str, text: str) -> None:
    inner = text.partition("{")[2].rpartition("}")[0]
    items = [i.strip() for i in inner.split(",") if i.strip()]
    if name == NETS:
        t.nets = collapse(items)
    elif name in (PF_MAP, PF_PORT_MAP):
        for item in items:
            k, _, v = item.partition(" : ")
            fip, proto, ports = (x.strip() for x in k.split(" . "))
            lo, _, hi = ports.partition("-")
            ip, port = (x.strip() for x in v.split(" . "))
            t.fwd[(fip, proto, int(lo), int(hi or lo))] = (ip, int(port))
    elif name in (DNAT_MAP, SNAT_MAP):
        d = t.dnat if name == DNAT_MAP else t.snat
        for item in items:
            k, _, v = item.partition(" : ")
            d[k.strip()] = v.strip()


# ---------------------------------------------------------------------------------------
# Diff: one nft transaction turning observed into desired.

def element_script(dnat_add: dict[str, str], dnat_del: set[str],
                   snat_add: dict[str, str], snat_del: set[str],
                   nets_add=(), nets_del=(), fwd_add=None, fwd_del=()) -> str:
    """Element deletes and adds for the maps and the set, as nft commands."""
    lines = []
    for name, keys in ((DNAT_MAP, dnat_del), (SNAT_MAP, snat_del), (NETS, nets_del)):
        if keys:
            lines.append(f"delete element {T} {name} {{ " + ", ".join(sorted(keys)) + " }")
    for name in (PF_PORT_MAP, PF_MAP):
        keys = [k for k in sorted(fwd_del) if _fwd_map(k) == name]
        if keys:
            lines.append(f"delete element {T} {name} {{ "
                         + ", ".join(_fwd_key(k) for k in keys) + " }")
    for name in (PF_PORT_MAP, PF_MAP):
        els = [_fwd_element(k, v) for k, v in (fwd_add or {}).items() if _fwd_map(k) == name]
        if els:
            lines.append(f"add element {T} {name} {{ " + ", ".join(els) + " }")
    for name, add in ((DNAT_MAP, dnat_add), (SNAT_MAP, snat_add)):
        if add:
            lines.append(f"add element {T} {name} {{ "
                         + ", ".join(f"{k} : {v}" for k, v in add.items()) + " }")
    if nets_add:
        lines.append(f"add element {T} {NETS} {{ " + ", ".join(sorted(nets_add)) + " }")
    return "\n".join(lines) + "\n" if lines else ""


def _map_delta(want: dict[str, str], have: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    add = {k: v for k, v in want.items() if have.get(k) != v}
    delete = {k for k, v in have.items() if want.get(k) != v}  # moved keys: delete then add
    return add, delete


def diff_script(want: NftTable, have: NftTable) -> str | None:
    """The ``nft -f`` input turning ``have`` into ``want``, or None when they are equal.
    A missing table or different maps/chain hooks: the table is replaced whole, atomically;
    otherwise changed chains are flushed and refilled, and map elements added or deleted."""
    if not have.present or have.sets != want.sets or \
            {n: c[:1] for n, c in have.chain_rules.items()} != {n: c[:1] for n, c in want.chain_rules.items()}:
        head = f"table {T} {{}}\ndelete table {T}\n" if have.present else ""
        return head + render_script(want)
    lines = []
    for name, chain in want.chain_rules.items():
        if have.chain_rules.get(name) != chain:
            lines.append(f"flush chain {T} {name}")
            lines += [f"add rule {T} {name} {rule}" for rule in chain[1:]]
    dnat_add, dnat_del = _map_delta(want.dnat, have.dnat)
    snat_add, snat_del = _map_delta(want.snat, have.snat)
    nets_del = have.nets - want.nets
    nets_add = want.nets - have.nets
    if nets_del:  # an interval set: rewrite it whole rather than split intervals
        lines.append(f"flush set {T} {NETS}")
        nets_del, nets_add = set(), want.nets
    fwd_add = {k: v for k, v in want.fwd.items() if have.fwd.get(k) != v}
    fwd_del = {k for k, v in have.fwd.items() if want.fwd.get(k) != v}
    script = element_script(dnat_add, dnat_del, snat_add, snat_del, nets_add, nets_del,
                            fwd_add, fwd_del)
    text = "\n".join(lines) + ("\n" if lines else "") + script
    return text or None


def apply_to(t: NftTable, want: NftTable | None, delta: tuple | None) -> None:
    """Update cached facts ``t`` in place to what a successful step made of them."""
    if want is not None:
        t.present, t.sets, t.chain_rules, t.nets = True, dict(want.sets), dict(want.chain_rules), want.nets
        t.dnat.clear()
        t.dnat.update(want.dnat)
        t.snat.clear()
        t.snat.update(want.snat)
        t.fwd.clear()
        t.fwd.update(want.fwd)
        return
    dnat_add, dnat_del, snat_add, snat_del = delta
    for k in dnat_del:
        t.dnat.pop(k, None)
    for k in snat_del:
        t.snat.pop(k, None)
    t.dnat.update(dnat_add)
    t.snat.update(snat_add)


def fip_delta(have: NftTable, add: dict[str, str], remove) -> tuple:
    """Element changes for floating IPs added or moved (fip -> fixed) and removed, against
    the cached table: (dnat_add, dnat_del, snat_add, snat_del). A fixed IP already SNATed
    by another floating IP that stays keeps it (the first one wins, as a full render does)."""
    add = {_ip(f): _ip(x) for f, x in add.items()}
    gone = {f for f in map(_ip, remove) if f in have.dnat}
    gone |= {f for f, x in add.items() if have.dnat.get(f) not in (None, x)}
    dnat_del = set(gone)
    snat_del = {have.dnat[f] for f in gone if have.snat.get(have.dnat[f]) == f}
    dnat_add: dict[str, str] = {}
    snat_add: dict[str, str] = {}
    for fip, fixed in sorted(add.items(), key=lambda p: ipaddress.IPv4Address(p[0])):
        if have.dnat.get(fip) == fixed:
            continue
        dnat_add[fip] = fixed
        if fixed not in snat_add and (fixed not in have.snat or fixed in snat_del):
            snat_add[fixed] = fip
    return dnat_add, dnat_del, snat_add, snat_del


# ---------------------------------------------------------------------------------------
# The shell: libnftables in-process, one context (netlink socket) per namespace.

class _Lib:
    lib = None
    tried = False

    @classmethod
    def get(cls):
        if not cls.tried:
            cls.tried = True
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                return None
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            for f in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
                getattr(lib, f).argtypes = [ctypes.c_void_p]
            for f in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
                getattr(lib, f).argtypes = [ctypes.c_void_p]
                getattr(lib, f).restype = ctypes.c_char_p
            cls.lib = lib
        return cls.lib


class NftError(Exception):
    pass


class NftContext:
    """A libnftables context whose netlink socket was opened inside ``ns``; sockets keep
    the namespace they were made in, so it can be used from any thread afterwards."""

    def __init__(self, ns: str):
        self.lib = _Lib.get()
        self.lock = threading.Lock()
        lib = self.lib
        self.ctx, self.gen = run_in_netns(ns, lambda: (
            lib.nft_ctx_new(0) if lib else None,
            high_socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)))
        if self.lib and self.ctx:
            self.lib.nft_ctx_buffer_output(self.ctx)
            self.lib.nft_ctx_buffer_error(self.ctx)
        self.seq = 0

    def run(self, script: str) -> str:
        with self.lock:
            rc = self.lib.nft_run_cmd_from_buffer(self.ctx, script.encode())
            out = self.lib.nft_ctx_get_output_buffer(self.ctx) or b""
            err = self.lib.nft_ctx_get_error_buffer(self.ctx) or b""
        if rc != 0:
            raise NftError(err.decode(errors="replace").strip() or f"nft failed ({rc})")
        return out.decode()

    def genid(self) -> int:
        """The namespace's nf_tables generation: it changes with any ruleset change."""
        with self.lock:
            self.seq += 1
            msg = struct.pack("=IHHII", 20, (10 << 8) | 16, 1, self.seq, 0) + struct.pack("BBH", 0, 0, 0)
            self.gen.send(msg)
            while True:
                data = self.gen.recv(65536)
                length, mtype, _, seq, _ = struct.unpack_from("=IHHII", data)
                if seq != self.seq:
                    continue
                if mtype == 2:  # NLMSG_ERROR
                    raise NftError("GETGEN failed")
                off = 20
                while off + 4 <= length:
                    alen, atype = struct.unpack_from("=HH", data, off)
                    if atype & 0x7fff == 1:
                        return struct.unpack_from("!I", data, off + 4)[0]
                    off += (alen + 3) & ~3
                raise NftError("GETGEN: no generation id")

    def close(self) -> None:
        if self.ctx:
            self.lib.nft_ctx_free(self.ctx)
            self.ctx = None
        self.gen.close()


class NftablesDriver:
    name = "nftables"

    def __init__(self, use_lib: bool = True):
        self.fully_random = True  # nft has had fully-random since 0.9
        self.use_lib = use_lib and _Lib.get() is not None
        self._ctx: dict[str, NftContext] = {}
        self._cache: dict[str, tuple[int, NftTable]] = {}  # ns -> (genid, table) we know

    # -- shell helpers ----------------------------------------------------------------
    def _context(self, ns: str) -> NftContext:
        c = self._ctx.get(ns)
        if c is None:
            c = self._ctx[ns] = NftContext(ns)
        return c

    def _run(self, ns: str, script: str) -> str:
        if self.use_lib:
            return self._context(ns).run(script)
        if script.startswith("list "):
            r = nsexec(ns, ["nft", *script.split()], check=False)
            if r.returncode:
                raise NftError(r.stderr.strip())
            return r.stdout
        nsexec(ns, ["nft", "-f", "-"], input=script)
        return ""

    def _genid(self, ns: str) -> int | None:
        try:
            return self._context(ns).genid()
        except (OSError, NftError):
            return None

    def forget(self, ns: str) -> None:
        """The namespace is going away: close its context, drop what we knew."""
        self._cache.pop(ns, None)
        c = self._ctx.pop(ns, None)
        if c is not None:
            c.close()

    def close(self) -> None:
        for ns in list(self._ctx):
            self.forget(ns)

    # -- driver interface -------------------------------------------------------------
    def observe(self, ns: str, fresh: bool = False) -> NftTable:
        """floatip's table in ``ns``. What this driver last applied or read is reused while
        the namespace's nf_tables generation has not moved; otherwise it is read again."""
        gen = self._genid(ns)
        cached = self._cache.get(ns)
        if not fresh and cached is not None and gen is not None and cached[0] == gen:
            return cached[1]
        try:
            text = self._run(ns, f"list table {T}")
        except NftError as e:
            if "No such file" not in str(e):
                raise
            text = ""
        t = parse(text)
        if gen is not None:
            self._cache[ns] = (gen, t)
        return t

    def plan(self, ns: str, spec: NatSpec, facts: NftTable | None):
        want = render(spec, self.fully_random)
        script = diff_script(want, facts or NftTable())
        if script is None:
            return None
        return Step("nat", "nft", ns, (script, ("table", want)), "rules differ")

    def known(self, ns: str) -> NftTable | None:
        """What this driver last read or applied in ``ns`` (no kernel read)."""
        c = self._cache.get(ns)
        return c[1] if c else None

    def plan_fips(self, ns: str, facts: NftTable, add: dict[str, str], remove,
                  have: dict[str, str] | None = None):
        """Floating IPs added/moved (fip -> fixed) and removed, as element changes only."""
        delta = fip_delta(facts, add, set(remove))
        script = element_script(*delta)
        if not script:
            return None
        return Step("nat", "nft", ns, (script, ("delta", delta)), "floating IPs changed")

    def plan_forwards(self, ns: str, spec: NatSpec, facts: NftTable, add: dict, remove: set):
        """Port forwardings added/changed (key -> value) and removed, as pf_dnat element
        changes only: constant time whatever the number of forwardings."""
        add = {(_ip(f), p, lo, hi): (_ip(x), port) for (f, p, lo, hi), (x, port) in add.items()}
        script = element_script({}, set(), {}, set(), fwd_add=add, fwd_del=remove)
        if not script:
            return None
        return Step("nat", "nft", ns, (script, ("fwd", (add, set(remove)))),
                    "port forwardings changed")

    @staticmethod
    def fip_map(facts: NftTable) -> dict[str, str]:
        return facts.fip_map()

    @staticmethod
    def forward_map(facts: NftTable) -> dict[Forward, tuple[str, int]]:
        return dict(facts.fwd)

    def execute(self, step) -> None:
        ns = step.target
        script = step.args[0]
        try:
            self._run(ns, script)
        except Exception:
            self._cache.pop(ns, None)
            raise
        extra = step.args[1] if len(step.args) > 1 else None
        cached = self._cache.get(ns)
        if extra is not None and cached is None and extra[0] == "table":
            cached = (0, NftTable())
        if extra is None or cached is None:
            self._cache.pop(ns, None)
            return
        kind, value = extra
        if kind == "fwd":
            for k in value[1]:
                cached[1].fwd.pop(k, None)
            cached[1].fwd.update(value[0])
        else:
            apply_to(cached[1], value if kind == "table" else None,
                     value if kind == "delta" else None)
        gen = self._genid(ns)
        if gen is None:
            self._cache.pop(ns, None)
        else:
            self._cache[ns] = (gen, cached[1])
