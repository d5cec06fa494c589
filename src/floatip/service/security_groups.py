"""Security groups and their rules, as Neutron's securitygroups_db: the project's
``default`` group made on first use, Neutron's rule checks and refusals."""
from __future__ import annotations

import ipaddress

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import store as S
from ..core import protocols as P
from .common import _must, err, new_id
from .sg_views import rule_dict, sg_dict

DEFAULT_DESCRIPTION = "Default security group"
PORT_RANGE = (1, 65535)


def _rule(sg: S.SecurityGroup, **kw) -> S.SecurityGroupRule:
    return S.SecurityGroupRule(id=new_id(), project_id=sg.project_id,
                               security_group_id=sg.id, **kw)


def ensure_default(s: Session, project_id: str) -> str | None:
    """The project's ``default`` group, made now if it has none (Neutron's rules: egress
    anywhere, ingress from its own members, IPv4 and IPv6). The empty project (noauth
    without X-Project-Id, an admin's project-less port) has one too: without it such ports
    would get no group at all, outbound closed."""
    found = S.default_group_id(s, project_id)
    if found:
        return found
    sg = S.SecurityGroup(id=new_id(), project_id=project_id, name="default",
                         description=DEFAULT_DESCRIPTION, stateful=True)
    try:
        with s.begin_nested():  # another request may make it at the same time
            s.add(sg)
            s.flush()
            s.add(S.DefaultSecurityGroup(project_id=project_id, security_group_id=sg.id))
            for eth in ("IPv4", "IPv6"):
                s.add(_rule(sg, direction="egress", ethertype=eth))
                s.add(_rule(sg, direction="ingress", ethertype=eth, remote_group_id=sg.id))
            s.flush()
    except IntegrityError:
        return S.default_group_id(s, project_id)
    return sg.id


def _egress_rules(sg: S.SecurityGroup) -> None:
    for eth in ("IPv4", "IPv6"):
        s_rule = _rule(sg, direction="egress", ethertype=eth)
        sg.rules.append(s_rule)


def create_security_group(s: Session, d: dict) -> dict:
    ensure_default(s, d["project_id"])
    sg = S.SecurityGroup(id=new_id(), project_id=d["project_id"], name=d.get("name", ""),
                         description=d.get("description", ""),
                         stateful=d.get("stateful", True))
    _egress_rules(sg)
    S.add(s, sg)
    return sg_dict(s, sg)


def _is_default(s: Session, sg: S.SecurityGroup) -> bool:
    return S.default_group_id(s, sg.project_id) == sg.id


def update_security_group(s: Session, gid: str, d: dict) -> dict:
    sg = _must(s, "security_group", gid, lock=True)
    if "stateful" in d and d["stateful"] != sg.stateful and S.ports_of_group(s, gid, 1):
        raise in_use(gid)
    if "name" in d and _is_default(s, sg):
        raise err("SecurityGroupCannotUpdateDefault", 409,
                  "Updating default security group not allowed.")
    for key in ("name", "description", "stateful"):
        if key in d:
            setattr(sg, key, d[key])
    S.touch(sg)
    s.flush()
    return sg_dict(s, sg)


def in_use(gid: str):
    return err("SecurityGroupInUse", 409, f"Security Group {gid} in use.")


def delete_security_group(s: Session, gid: str, admin: bool = True) -> None:
    sg = _must(s, "security_group", gid, lock=True)
    if S.ports_of_group(s, gid, 1):
        raise in_use(gid)
    if sg.name == "default" and _is_default(s, sg) and not admin:
        raise err("SecurityGroupCannotRemoveDefault", 409,
                  "Insufficient rights for removing default security group.")
    # rules of other groups that name this one go too (Neutron's ON DELETE CASCADE), through
    # the unit of work so that their groups reach the agents as changed
    for r in S.rules_with_remote_group(s, gid):
        if r.security_group_id != gid:
            s.delete(r)
    S.delete(s, sg)


# -- rules -------------------------------------------------------------------------------

def _bad(type_: str, message: str):
    return err(type_, 400, message)


def _proto_number(protocol: str | None) -> int | None:
    if protocol in P.PROTO_ANY:
        return None
    return P.IP_PROTOCOL_MAP.get(protocol, None) if not protocol.isdigit() else int(protocol)


def check_rule(d: dict) -> dict:
    """Neutron's _validate_base_security_group_rule_attributes, in its order; returns the
    rule made canonical (IPv6 ICMP named ipv6-icmp, the whole port range as none)."""
    d = {k: d.get(k) for k in ("direction", "ethertype", "protocol", "port_range_min",
                               "port_range_max", "remote_ip_prefix", "remote_group_id",
                               "remote_address_group_id")} | {"ethertype": d.get("ethertype")
                                                               or "IPv4"}
    if d["ethertype"] == "IPv6":
        if d["protocol"] in P.IPV6_ICMP_LEGACY:
            d["protocol"] = "ipv6-icmp"
        elif d["protocol"] == "1":
            d["protocol"] = "58"
    if (d["port_range_min"], d["port_range_max"]) == PORT_RANGE:
        d["port_range_min"] = d["port_range_max"] = None
    lo, hi = d["port_range_min"], d["port_range_max"]
    if lo is not None or hi is not None:
        if not d["protocol"]:
            raise _bad("SecurityGroupProtocolRequiredWithPorts",
                       "Must also specify protocol if port range is given.")
        num = _proto_number(d["protocol"])
        if num in P.PORT_PROTOCOLS:
            if lo == 0 or hi == 0:
                raise _bad("SecurityGroupInvalidPortValue", "Invalid value for port 0")
            if lo is None or hi is None or lo > hi:
                raise _bad("SecurityGroupInvalidPortRange", "For TCP/UDP protocols, "
                           "port_range_min must be <= port_range_max")
        elif num in P.ICMP:
            for attr, field, v in (("port_range_min", "type", lo), ("port_range_max", "code", hi)):
                if v is not None and not 0 <= v <= 255:
                    raise _bad("SecurityGroupInvalidIcmpValue", f"Invalid value for ICMP "
                               f"{field} ({attr}) {v}. It must be 0 to 255.")
            if lo is None:
                raise _bad("SecurityGroupMissingIcmpType", f"ICMP code (port-range-max) {hi} "
                           "is provided but ICMP type (port-range-min) is missing.")
        else:
            raise _bad("SecurityGroupInvalidProtocolForPort", f"Ports cannot be specified for "
                       f"protocol {num}. Ports are only supported for "
                       "DCCP, SCTP, TCP, UDP, UDPLITE.")
    if d["remote_ip_prefix"]:
        version = ipaddress.ip_interface(d["remote_ip_prefix"]).version
        if d["ethertype"] != f"IPv{version}":
            raise _bad("SecurityGroupRuleParameterConflict", f"Conflicting value ethertype "
                       f"{d['ethertype']} for CIDR {d['remote_ip_prefix']}")
    if d["protocol"] in P.IPV6_ONLY and d["ethertype"] == "IPv4":
        raise _bad("SecurityGroupEthertypeConflictWithProtocol",
                   f"Invalid ethertype IPv4 for protocol {d['protocol']}.")
    if sum(bool(d[k]) for k in ("remote_ip_prefix", "remote_group_id",
                                "remote_address_group_id")) > 1:
        raise _bad("SecurityGroupMultipleRemoteEntites", "Only one of remote_ip_prefix or "
                   "remote_group_id or remote_address_group_id may be provided.")
    return d


def _rule_key(r, sg_id: str) -> tuple:
    """Neutron's _rule_to_key: what makes two rules the same."""
    prefix = r.get("remote_ip_prefix") if isinstance(r, dict) else r.remote_ip_prefix
    get = r.get if isinstance(r, dict) else (lambda k: getattr(r, k))
    if prefix in ("0.0.0.0/0", "::/0"):
        prefix = None
    proto = get("protocol")
    return (get("direction"), get("ethertype"), get("port_range_max"), get("port_range_min"),
            None if proto is None else P.number(proto, get("ethertype")),
            get("remote_group_id"), get("remote_address_group_id"), prefix, sg_id)


def create_security_group_rule(s: Session, d: dict) -> dict:
    rule = check_rule(d)
    if rule["remote_group_id"]:
        _must(s, "security_group", rule["remote_group_id"])
    if rule["remote_address_group_id"]:
        _must(s, "address_group", rule["remote_address_group_id"])
    sg = _must(s, "security_group", d["security_group_id"], lock=True)
    key = _rule_key(rule, sg.id)
    for r in sg.rules:
        if _rule_key(r, sg.id) == key:
            raise err("SecurityGroupRuleExists", 409,
                      f"Security group rule already exists. Rule id is {r.id}.")
    row = S.SecurityGroupRule(id=new_id(), project_id=d["project_id"], security_group_id=sg.id,
                              description=d.get("description", ""), **rule)
    sg.rules.append(row)
    S.touch(sg)  # as Neutron: a rule revises its group
    s.flush()
    return rule_dict(s, row)


def update_security_group_rule(s: Session, rid: str, d: dict) -> dict:
    row = _must(s, "security_group_rule", rid, lock=True)
    if "description" in d:
        row.description = d["description"]
        S.touch(row)
    s.flush()
    return rule_dict(s, row)


def delete_security_group_rule(s: Session, rid: str) -> None:
    row = _must(s, "security_group_rule", rid, lock=True)
    sg = S.get(s, S.SecurityGroup, row.security_group_id)
    if sg is not None:
        S.touch(sg)
    S.delete(s, row)
