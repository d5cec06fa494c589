"""Neutron's trunks (``trunk`` extension), API only: a parent port and subports, each a port
with its segmentation (``vlan`` 1-4094, or ``inherit``: its network's provider type and id).
Checks, errors and policy are Neutron's trunk plugin (``services/trunk/plugin.py``,
``rules.py``) with no trunk driver loaded: a bound parent port is not trunkable
(ParentPortInUse) and a trunk on a bound parent is in use. floatip's dataplanes do not
realise trunks (no VLAN-aware VMs): the trunk stays DOWN.
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import store as S
from ..core.errors import NeutronError
from .common import body_project, err, new_id, ts
from .listing import listed
from .policy import Context, Policy

T, SP = S.Trunk, S.SubPort
FILTERS = ("id", "name", "description", "project_id", "tenant_id", "port_id", "status",
           "admin_state_up")
VLAN_MIN, VLAN_MAX = 1, 4094


def not_found(tid: str) -> NeutronError:
    return err("TrunkNotFound", 404, f"Trunk {tid} could not be found.")


def invalid(message: str) -> NeutronError:
    return err("InvalidInput", 400, f"Invalid input for operation: {message}.")


def _subports_error(data: Any) -> str | None:
    """neutron-lib's validate_subports."""
    if not isinstance(data, list):
        return f"Invalid data format for subports: '{data}' is not a list"
    ids: set = set()
    segs: dict = {}
    for sp in data:
        if not isinstance(sp, dict):
            return f"Invalid data format for subport: '{sp}' is not a dict"
        if "port_id" not in sp:
            return "A valid port UUID must be specified"
        try:
            uuid.UUID(str(sp["port_id"]))
        except ValueError:
            return f"Invalid UUID for subport: '{sp['port_id']}'"
        if sp["port_id"] in ids:
            return f"Non unique UUID for subport: '{sp['port_id']}'"
        ids.add(sp["port_id"])
        stype, sid = sp.get("segmentation_type"), sp.get("segmentation_id")
        if stype == "inherit":
            return None
        if (not stype or sid is None) and len(sp) > 1:
            return (f"Invalid subport details '{sp}': missing segmentation information. Must "
                    "specify both segmentation_id and segmentation_type")
        if sid in segs.get(stype, set()):
            return f"Segmentation ID '{sid}' for '{sp['port_id']}' is not unique"
        if sid is not None:
            segs.setdefault(stype, set()).add(sid)
    return None


def subport_view(sp: S.SubPort) -> dict:
    return {"port_id": sp.port_id, "segmentation_type": sp.segmentation_type,
            "segmentation_id": sp.segmentation_id}


class Trunks:
    """The API's operations as a caller may do them (``get_trunk``: the trunk's project's
    readers, or an admin)."""

    def __init__(self, policy: Policy, access):
        self.policy, self.access = policy, access

    # -- views --------------------------------------------------------------------------
    def view(self, s: Session, t: S.Trunk) -> dict:
        subs = s.execute(select(SP).where(SP.trunk_id == t.id).order_by(SP.port_id)).scalars()
        return {"id": t.id, "name": t.name, "description": t.description,
                "project_id": t.project_id, "tenant_id": t.project_id,
                "admin_state_up": t.admin_state_up, "status": t.status, "port_id": t.port_id,
                "sub_ports": [subport_view(sp) for sp in subs],
                "revision_number": t.revision_number, "created_at": ts(t.created_at),
                "updated_at": ts(t.updated_at), "tags": []}

    def _trunk(self, s: Session, ctx: Context, tid: str, lock: bool = False) -> S.Trunk:
        t = S.get(s, T, tid, lock=lock)
        if t is None or not self.policy.check(ctx, "get_trunk", self._facts(t)):
            raise not_found(tid)
        return t

    @staticmethod
    def _facts(t: S.Trunk) -> dict:
        return {"id": t.id, "project_id": t.project_id, "tenant_id": t.project_id,
                "port_id": t.port_id, "name": t.name, "admin_state_up": t.admin_state_up}

    # -- read ---------------------------------------------------------------------------
    def list(self, s: Session, ctx: Context, query: list[tuple[str, str]]) -> list[dict]:
        params: dict[str, list[str]] = {}
        for k, v in query:
            params.setdefault(k, []).append(v)
        q = select(T).order_by(T.created_at, T.id)
        if not ctx.is_admin:
            q = q.where(T.project_id == ctx.project_id)
        out = [self.view(s, t) for t in s.execute(q).scalars()
               if self.policy.check(ctx, "get_trunk", self._facts(t))]
        return listed("trunk", out, params, FILTERS)  # Neutron's filters, sorting, paging

    def show(self, s: Session, ctx: Context, tid: str, fields: list[str] | None) -> dict:
        d = self.view(s, self._trunk(s, ctx, tid))
        return {k: v for k, v in d.items() if k in fields} if fields else d

    def get_subports(self, s: Session, ctx: Context, tid: str) -> dict:
        t = self._trunk(s, ctx, tid)
        self.policy.require(ctx, "get_subports", self._facts(t))
        return {"sub_ports": self.view(s, t)["sub_ports"]}

    # -- write --------------------------------------------------------------------------
    def create(self, s: Session, ctx: Context, d: dict) -> dict:
        body_project(ctx, d)
        project = d.get("project_id") or d.get("tenant_id") or ctx.project_id
        subports = d.get("sub_ports") or []
        body = {"project_id": project, "tenant_id": project, "port_id": d["port_id"],
                "name": d.get("name", ""), "admin_state_up": d.get("admin_state_up", True)}
        self.policy.require(ctx, "create_trunk", body)
        why = _subports_error(subports)
        if why:
            raise err("HTTPBadRequest", 400, f"Invalid input for sub_ports. Reason: {why}.")
        parent = self._port(s, ctx, d["port_id"])
        self._trunkable(s, parent, as_parent=True)
        t = T(id=new_id(), project_id=project, name=d.get("name", ""),
              description=d.get("description", ""),
              admin_state_up=d.get("admin_state_up", True), status="DOWN", port_id=parent.id)
        S.add(s, t)
        s.flush()
        self._add(s, ctx, t, parent, subports)
        return self.view(s, t)

    def update(self, s: Session, ctx: Context, tid: str, d: dict) -> dict:
        t = self._trunk(s, ctx, tid, lock=True)
        self.policy.require(ctx, "update_trunk", {**self._facts(t), **d})
        for key in ("name", "description", "admin_state_up"):
            if key in d:
                setattr(t, key, d[key])
        S.touch(t)
        s.flush()
        return self.view(s, t)

    def delete(self, s: Session, ctx: Context, tid: str) -> None:
        t = self._trunk(s, ctx, tid, lock=True)
        self.policy.require(ctx, "delete_trunk", self._facts(t))
        self._managed(t)
        parent = S.get(s, S.Port, t.port_id)
        if parent is not None and parent.host_id:  # no trunk driver can untrunk it
            raise err("TrunkInUse", 409, f"Trunk {tid} is currently in use.")
        s.delete(t)
        s.flush()

    def add_subports(self, s: Session, ctx: Context, tid: str, body: Any) -> dict:
        t = self._trunk(s, ctx, tid, lock=True)
        self.policy.require(ctx, "add_subports", self._facts(t))
        subports = _sub_ports_of(body)
        why = _subports_error(subports)
        if why:
            raise invalid(why)
        self._managed(t)
        t.status = "DOWN"
        self._add(s, ctx, t, S.get(s, S.Port, t.port_id), subports)
        S.touch(t)
        s.flush()
        return self.view(s, t)

    def remove_subports(self, s: Session, ctx: Context, tid: str, body: Any) -> dict:
        t = self._trunk(s, ctx, tid, lock=True)
        self.policy.require(ctx, "remove_subports", self._facts(t))
        self._managed(t)
        subports = _sub_ports_of(body)
        why = _subports_error(subports)
        if why:
            raise invalid(why)
        have = {sp.port_id: sp for sp in s.execute(
            select(SP).where(SP.trunk_id == t.id)).scalars()}
        for sp in subports:
            row = have.pop(str(sp["port_id"]), None)
            if row is None:
                raise err("SubPortNotFound", 404, f"SubPort {sp['port_id']} on trunk {tid} "
                                                  "could not be found.")
            s.delete(row)
        t.status = "DOWN"
        S.touch(t)
        s.flush()
        return self.view(s, t)

    # -- rules (Neutron's trunk rules.py) -------------------------------------------------
    def _port(self, s: Session, ctx: Context, pid: Any) -> S.Port:
        seen = self.access._must_see(s, ctx, "port", pid, ())
        if seen is None:
            raise err("PortNotFound", 404, f"Port {pid} could not be found.")
        return S.get(s, S.Port, seen["id"])

    @staticmethod
    def _managed(t: S.Trunk) -> None:
        if not t.admin_state_up:
            raise err("TrunkDisabled", 409, f"Trunk {t.id} is currently disabled.")

    @staticmethod
    def _trunkable(s: Session, port: S.Port, as_parent: bool) -> None:
        """TrunkPortValidator.validate."""
        if s.get(SP, port.id) is not None:
            raise err("TrunkPortInUse", 409, f"Port {port.id} is in use by another trunk.")
        if s.execute(select(T.id).where(T.port_id == port.id)).first() or \
                (as_parent and port.host_id):
            raise err("ParentPortInUse", 409, f"Port {port.id} is currently in use and is not "
                                              "eligible for use as a parent port.")
        if not as_parent and port.device_id:
            raise err("PortInUse", 409, f"Unable to complete operation on port {port.id} for "
                                        f"network {port.network_id}. Port already has an "
                                        f"attached device {port.device_id}.")

    def _add(self, s: Session, ctx: Context, t: S.Trunk, parent: S.Port | None,
             subports: list[dict]) -> None:
        """SubPortsValidator.validate, then the rows (a segmentation in use: DuplicateSubPort)."""
        trunk_mtu = S.get(s, S.Network, parent.network_id).mtu if parent is not None else None
        taken = {(r.segmentation_type, r.segmentation_id) for r in s.execute(
            select(SP).where(SP.trunk_id == t.id)).scalars()}
        rows = []
        for sp in subports:
            if str(sp["port_id"]) == t.port_id:
                raise err("ParentPortInUse", 409, f"Port {t.port_id} is currently in use and "
                                                  "is not eligible for use as a parent port.")
            port = self._port(s, ctx, sp["port_id"])
            net = S.get(s, S.Network, port.network_id)
            if trunk_mtu and net.mtu > trunk_mtu:
                raise err("SubPortMtuGreaterThanTrunkPortMtu", 409,
                          f"MTU {net.mtu} of subport {port.id} cannot be greater than MTU "
                          f"{trunk_mtu} of trunk {t.port_id}.")
            stype, sid = sp.get("segmentation_type"), sp.get("segmentation_id")
            if stype == "inherit":
                stype, sid = net.network_type, net.segmentation_id
            elif "segmentation_type" not in sp or "segmentation_id" not in sp:
                raise invalid(f"Invalid subport details '{sp}': missing segmentation "
                              "information. Must specify both segmentation_id and "
                              "segmentation_type")
            try:
                sid = int(sid) if not isinstance(sid, bool) else None
            except (TypeError, ValueError):
                sid = None
            if sid is None:
                raise invalid(f"Invalid subport details: segmentation_id "
                              f"'{sp.get('segmentation_id')}' is not an integer")
            if stype != "vlan":
                raise invalid(f"Unknown segmentation_type '{stype}'")
            if not VLAN_MIN <= sid <= VLAN_MAX:
                raise invalid(f"Segmentation ID '{sid}' is not in range")
            self._trunkable(s, port, as_parent=False)
            if (stype, sid) in taken:
                raise err("DuplicateSubPort", 409, f"segmentation_type {stype} and "
                                                   f"segmentation_id {sid} already in use on "
                                                   f"trunk {t.id}.")
            taken.add((stype, sid))
            rows.append(SP(port_id=port.id, trunk_id=t.id, segmentation_type=stype,
                           segmentation_id=sid))
        for r in rows:
            s.add(r)
        s.flush()


def _sub_ports_of(body: Any) -> Any:
    if not isinstance(body, dict) or "sub_ports" not in body:
        raise err("HTTPBadRequest", 400, "Unable to find 'sub_ports' in request body")
    return body["sub_ports"]


def trunk_refusal(port_id: str, roles: dict[str, str]) -> NeutronError | None:
    """enforce_port_deletion_rules: a trunk's subport (``roles["sub"]``: its trunk) or
    parent (``roles["parent"]``) cannot be deleted (``store.port_uses`` asks both)."""
    if "sub" in roles:
        return err("PortInUseAsSubPort", 409, f"Port {port_id} is currently a subport for "
                                              f"trunk {roles['sub']}.")
    if "parent" in roles:
        return err("PortInUseAsTrunkParent", 409, f"Port {port_id} is currently a parent port "
                                                  f"for trunk {roles['parent']}.")
    return None

