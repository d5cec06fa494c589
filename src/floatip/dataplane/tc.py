"""Bandwidth limits on a router's qg- device: read floatip's qdiscs, classes and filters
there and on its ifb device, and run the changes ``core.tc`` computes (``tc``/``ip`` argv
in the router's namespace, never a shell)."""
from __future__ import annotations

import json

from ..core.tc import TcFacts, changes, ifb_name, parse_classes, parse_filters, side
from .netns import nsexec


def observe(ns: str, qg: str, root_htb: bool, ifb: bool) -> TcFacts | None:
    """``root_htb``/``ifb``: what the link dump showed (qg-'s root qdisc is htb; the qi-
    device exists); neither: nothing of floatip's to read (no tc run)."""
    if not root_htb and not ifb:
        return None
    facts = TcFacts(root=root_htb, ifb=ifb)
    if root_htb:
        classes = parse_classes(nsexec(ns, ["tc", "class", "show", "dev", qg]).stdout)
        facts.used |= set(classes)
        facts.egress = side(parse_filters(_json(ns, ["tc", "-j", "filter", "show", "dev", qg,
                                                     "parent", "1:"]), 12), classes)
    qdiscs = _json(ns, ["tc", "-j", "qdisc", "show", "dev", qg])
    if any(q.get("kind") == "ingress" for q in qdiscs):
        redirect = _json(ns, ["tc", "-j", "filter", "show", "dev", qg, "parent", "ffff:"])
        facts.redirect = any(a.get("kind") == "mirred" and a.get("to_dev") == ifb_name(qg)
                             for f in redirect for a in (f.get("options") or {})
                             .get("actions", ()))
    if ifb:
        dev = ifb_name(qg)
        facts.ifb_root = any(q.get("kind") == "htb" and q.get("root") for q in _json(
            ns, ["tc", "-j", "qdisc", "show", "dev", dev]))
        if facts.ifb_root:
            classes = parse_classes(nsexec(ns, ["tc", "class", "show", "dev", dev]).stdout)
            facts.used |= set(classes)
            facts.ingress = side(parse_filters(_json(ns, ["tc", "-j", "filter", "show", "dev",
                                                          dev, "parent", "1:"]), 16), classes)
    return facts


def _json(ns: str, argv: list[str]) -> list:
    out = nsexec(ns, argv, check=False).stdout.strip()
    return json.loads(out) if out.startswith("[") else []


def apply(ns: str, qg: str, want: tuple, root_htb: bool, ifb: bool) -> int:
    """Make qg- (and qi-) carry ``want``; returns the number of commands run."""
    have = observe(ns, qg, root_htb, ifb) or TcFacts()
    argvs = changes(qg, want, have)
    run: list[list[str]] = []
    for argv in argvs + [[]]:
        if argv[:1] == ["tc"]:  # consecutive tc commands: one ``tc -batch`` process
            run.append(argv[1:])
            continue
        if run:  # its words are floatip's names, addresses and numbers: no quoting needed
            nsexec(ns, ["tc", "-batch", "-"], input="".join(" ".join(a) + "\n" for a in run))
            run = []
        if argv:
            nsexec(ns, argv)
    return len(argvs)
