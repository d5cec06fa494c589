"""A list's body as Neutron's pagination writes it: with a ``limit``, ``<collection>_links``
holds the hrefs of the next and the previous page (get_pagination_links)."""
from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request


def _href(request: Request, marker: str | None, reverse: bool) -> str:
    """The request's URL with ``marker`` (none for an empty page) and, for the previous page,
    ``page_reverse=True``; the other parameters as they came. The scheme is
    X-Forwarded-Proto's when a proxy says so, as Neutron's get_path_url."""
    query = [(k, v) for k, v in request.query_params.multi_items()
             if k != "marker" and (k != "page_reverse")]
    if marker:
        query.append(("marker", marker))
    if reverse:
        query.append(("page_reverse", "True"))
    url = request.url
    scheme = request.headers.get("x-forwarded-proto") or url.scheme
    return f"{scheme}://{url.netloc}{url.path}?{urlencode(query)}"


def page_body(request: Request, key: str, items: list[dict]) -> dict:
    """``{key: items}`` and, with a limit, ``{key}_links``: "next" unless a forward page came
    short, "previous" unless a reverse page did. An id the service kept for the links only
    (``fields`` without it) is dropped here."""
    params = request.query_params
    body: dict = {key: items}
    try:
        limit = int(params.get("limit") or 0)
    except ValueError:
        limit = 0  # the service refused it already
    if limit > 0:
        reverse = (params.get("page_reverse") or "").lower() == "true"
        links = []
        if not (len(items) < limit and not reverse):
            links.append({"rel": "next", "href": _href(
                request, items[-1].get("id") if items else None, False)})
        if not (len(items) < limit and reverse):
            links.append({"rel": "previous", "href": _href(
                request, items[0].get("id") if items else None, True)})
        body[f"{key}_links"] = links
        fields = {f for v in params.getlist("fields") for f in v.split(",") if f}
        if fields and "id" not in fields:
            for d in items:
                d.pop("id", None)
    return body
