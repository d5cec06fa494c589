"""Tags (Neutron's ``standard-attr-tag``): the ``/v2.0/{resources}/{id}/tags`` API, the
``tags`` attribute of each body, the list filters.

As Neutron's tagging controller: the resource is looked up whoever asks (no visibility
check), and the rule ``<action>_<resources>_tags`` decides on its project; a resource that
does not exist has none (403 for a project's caller, 404 for an admin). A change of tags
is a change of the resource: its revision_number goes up.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .. import store as S
from .common import err
from .policy import Context, Policy
from .tag_policy import TAGGED

KINDS = frozenset(kind for kind, _ in TAGGED.values())
MAX_TAG_LEN = 255
MAX_TAGS = 50
FILTERS = ("tags", "tags-any", "not-tags", "not-tags-any")


def invalid(message: str):
    return err("InvalidInput", 400, f"Invalid input for operation: {message}.")


def _shown(v: Any) -> str:
    return str(v).encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")


def check_tag(tag: Any) -> str:
    """neutron-lib's validate_string(tag, 255), as the tagging extension answers it."""
    if not isinstance(tag, str) or "\x00" in tag:
        raise invalid(f"'{_shown(tag)}' is not a valid string")
    try:
        tag.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"'{_shown(tag)}' is not a valid string") from None
    if len(tag) > MAX_TAG_LEN:
        raise invalid(f"'{tag}' exceeds maximum length of {MAX_TAG_LEN}")
    return tag


def check_tags(tags: Any) -> list[str]:
    """validate_list_of_unique_strings(tags, 255), and at most ``MAX_TAGS``."""
    if not isinstance(tags, list):
        raise invalid(f"'{_shown(tags)}' is not a list")
    for t in tags:
        check_tag(t)
    dups = sorted({t for t in tags if tags.count(t) > 1})
    if dups:
        raise invalid(f"Duplicate items in the list: '{', '.join(dups)}'")
    if len(tags) > MAX_TAGS:
        raise invalid(f"The number of tags exceed the per-resource limit of {MAX_TAGS}")
    return tags


def check_body(body: Any) -> list[str]:
    if not isinstance(body, dict) or "tags" not in body:
        raise invalid("Invalid tags body")
    return check_tags(body["tags"])


# -- the attribute and the filters -----------------------------------------------------------

def fill(s: Session, kind: str, bodies: list[dict]) -> list[dict]:
    """Each body's ``tags``, in one query for all of them."""
    if kind in KINDS and bodies:
        held = S.tags_of(s, kind, [d["id"] for d in bodies if "id" in d])
        for d in bodies:
            d["tags"] = held.get(d.get("id"), [])
    return bodies


def conditions(kind: str, params: dict[str, list[str]]) -> list:
    """The tag filters of a list query as SQL conditions; comma-separated values, as
    Neutron (``tags=red,blue``: both)."""
    out = []
    for op in FILTERS:
        if op in params and kind in KINDS:
            tags = [t for v in params[op] for t in v.split(",") if t]
            if tags:
                out.append(S.tag_condition(S.MODELS[kind], kind, op, tags))
    return out


def matches(held: list[str], params: dict[str, list[str]]) -> bool:
    """The tag filters over a body's tags, for lists filtered outside SQL."""
    have = set(held)
    for op in FILTERS:
        want = {t for v in params.get(op, []) for t in v.split(",") if t}
        if want and not {"tags": want <= have, "tags-any": bool(want & have),
                         "not-tags": not want <= have,
                         "not-tags-any": not want & have}[op]:
            return False
    return True


def create_with(s: Session, kind: str, rid: str, tags: list[str]) -> None:
    """Tags given in a create request's body (Neutron's tag-creation)."""
    S.add_tags(s, kind, rid, check_tags(tags))


def forget(s: Session, kind: str, rid: str) -> None:
    """The tags of a deleted resource."""
    if kind in KINDS:
        S.remove_tags(s, kind, rid)


# -- /v2.0/{resources}/{id}/tags --------------------------------------------------------------

class Tags:
    def __init__(self, policy: Policy):
        self.policy = policy

    def _target(self, s: Session, ctx: Context, action: str, coll: str, rid: str):
        """The resource's row (None if there is none) once ``<action>_<resource>:tags``
        allows the caller on its project (Neutron's tagging controller)."""
        kind, parent = TAGGED[coll]
        row = S.get(s, S.MODELS[kind], rid, lock=action != "get", related=False)
        target = {"id": rid, "project_id": row.project_id if row else None,
                  "tenant_id": row.project_id if row else None}
        if kind == "subnet" and row is not None:
            target["network_id"] = row.network_id
        self.policy.require(ctx, f"{action}_{kind}:tags", target)
        if row is None:
            raise err("TagResourceNotFound", 404, f"Resource {parent} {rid} could not be "
                                                  f"found.")
        return row

    def _held(self, s: Session, kind: str, rid: str) -> list[str]:
        return S.tags_of(s, kind, [rid]).get(rid, [])

    def list(self, s: Session, ctx: Context, coll: str, rid: str) -> dict:
        self._target(s, ctx, "get", coll, rid)
        return {"tags": self._held(s, TAGGED[coll][0], rid)}

    def has(self, s: Session, ctx: Context, coll: str, rid: str, tag: Any) -> None:
        check_tag(tag)
        self._target(s, ctx, "get", coll, rid)
        if tag not in self._held(s, TAGGED[coll][0], rid):
            raise err("TagNotFound", 404, f"Tag {tag} could not be found.")

    def replace(self, s: Session, ctx: Context, coll: str, rid: str, body: Any) -> dict:
        tags = check_body(body)
        row = self._target(s, ctx, "update", coll, rid)
        kind = TAGGED[coll][0]
        held = self._held(s, kind, rid)
        if sorted(held) != sorted(tags):
            S.remove_tags(s, kind, rid, [t for t in held if t not in tags])
            S.add_tags(s, kind, rid, [t for t in tags if t not in held])
            S.touch(row)
        return {"tags": tags}

    def add_many(self, s: Session, ctx: Context, coll: str, rid: str, body: Any) -> dict:
        """POST .../tags: the body's tags added to the resource's."""
        tags = check_body(body)
        row = self._target(s, ctx, "create", coll, rid)
        kind = TAGGED[coll][0]
        held = self._held(s, kind, rid)
        new = [t for t in tags if t not in held]
        check_tags(held + new)
        if new:
            S.add_tags(s, kind, rid, new)
            S.touch(row)
        return {"tags": sorted(held + new)}

    def add(self, s: Session, ctx: Context, coll: str, rid: str, tag: Any) -> None:
        check_tag(tag)
        row = self._target(s, ctx, "update", coll, rid)
        kind = TAGGED[coll][0]
        held = self._held(s, kind, rid)
        if tag not in held:
            check_tags(held + [tag])
            S.add_tags(s, kind, rid, [tag])
            S.touch(row)

    def remove(self, s: Session, ctx: Context, coll: str, rid: str, tag: Any) -> None:
        check_tag(tag)
        row = self._target(s, ctx, "delete", coll, rid)
        if not S.remove_tags(s, TAGGED[coll][0], rid, [tag]):
            raise err("TagNotFound", 404, f"Tag {tag} could not be found.")
        S.touch(row)

    def clear(self, s: Session, ctx: Context, coll: str, rid: str) -> None:
        row = self._target(s, ctx, "delete", coll, rid)
        if S.remove_tags(s, TAGGED[coll][0], rid):
            S.touch(row)
