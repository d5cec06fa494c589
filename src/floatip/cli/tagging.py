"""Tags on the API commands, as the openstack CLI has them: ``create --tag T`` (repeatable),
``set --tag T`` adds one, ``set --no-tag`` removes them all first, ``list --tags A,B`` (all
of them), ``--any-tags A,B``, ``--not-tags A,B`` (Neutron's tag filters)."""
from __future__ import annotations

from typing import Optional

import typer

from ..client import Client

TAG = typer.Option([], "--tag", help="A tag (repeatable; set: added to its tags).")
NO_TAG = typer.Option(False, "--no-tag", help="Remove its tags (with --tag: set exactly "
                                              "those).")
TAGS = typer.Option(None, "--tags", help="Only those with all these tags (A,B).")
ANY_TAGS = typer.Option(None, "--any-tags", help="Only those with any of these tags (A,B).")
NOT_TAGS = typer.Option(None, "--not-tags", help="Not those with all these tags (A,B).")


def with_tags(body: dict, tags: list[str]) -> dict:
    """A create body with ``--tag``'s (Neutron takes them in the create)."""
    return {**body, "tags": list(dict.fromkeys(tags))} if tags else body


def tag_filters(tags: Optional[str], any_tags: Optional[str],
                not_tags: Optional[str]) -> dict:
    return {k: v for k, v in (("tags", tags), ("tags-any", any_tags),
                              ("not-tags", not_tags)) if v}


def updated(c: Client, kind: str, rid: str, body: dict, tags: list[str],
            no_tag: bool) -> dict:
    """``set``: the attributes changed (when any), then the tags; the object as it is now."""
    obj = c.update(kind, rid, **body) if body else c.show(kind, rid)
    if not tags and not no_tag:
        return obj
    have = [] if no_tag else obj.get("tags") or []
    c.set_tags(kind, rid, list(dict.fromkeys(have + list(tags))))
    return c.show(kind, rid)
