"""``/v2.0/{resources}/{id}/tags`` (Neutron's standard-attr-tag): list, check, replace, add,
remove one or all tags of a network, subnet, port, router, floating IP or security group.
The answers' codes are Neutron's: 200 for a list or a replace, 201 for a tag added, 204 for
a tag found or removed."""
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from ..service.policy import Policy
from ..service.tags import TAGGED, Tags
from ..store.database import Database
from .resources import READ_ERRORS, WRITE_ERRORS, checked_id, ctx_of

TAGS_BODY = {"type": "object", "required": ["tags"],
             "properties": {"tags": {"type": "array", "maxItems": 50,
                                     "items": {"type": "string", "maxLength": 255}}}}
TAGS_ANSWER = {"content": {"application/json": {"schema": TAGS_BODY}}}


def router(db: Database, policy: Policy) -> APIRouter:
    api = APIRouter()
    tags = Tags(policy)

    def register(coll: str, kind: str) -> None:
        path = f"/v2.0/{coll}/{{rid}}/tags"
        docs = {"tags": [coll], "response_model": None}

        def list_(rid: str, request: Request):
            with db.read() as s:
                return JSONResponse(tags.list(s, ctx_of(request), coll, checked_id(kind, rid)))

        def has(rid: str, tag: str, request: Request):
            with db.read() as s:
                tags.has(s, ctx_of(request), coll, checked_id(kind, rid), tag)
            return Response(status_code=204)

        def replace(rid: str, request: Request, body: Any = Body(None)):
            with db.tx() as s:
                return JSONResponse(tags.replace(s, ctx_of(request), coll,
                                                 checked_id(kind, rid), body))

        def add_many(rid: str, request: Request, body: Any = Body(None)):
            with db.tx() as s:
                return JSONResponse(tags.add_many(s, ctx_of(request), coll,
                                                  checked_id(kind, rid), body), status_code=201)

        def add(rid: str, tag: str, request: Request):
            with db.tx() as s:
                tags.add(s, ctx_of(request), coll, checked_id(kind, rid), tag)
            return Response(status_code=201)

        def remove(rid: str, tag: str, request: Request):
            with db.tx() as s:
                tags.remove(s, ctx_of(request), coll, checked_id(kind, rid), tag)
            return Response(status_code=204)

        def clear(rid: str, request: Request):
            with db.tx() as s:
                tags.clear(s, ctx_of(request), coll, checked_id(kind, rid))
            return Response(status_code=204)

        api.add_api_route(path, list_, methods=["GET"], name=f"list_{kind}_tags",
                          responses={200: TAGS_ANSWER, **READ_ERRORS}, **docs)
        api.add_api_route(path, replace, methods=["PUT"], name=f"replace_{kind}_tags",
                          responses={200: TAGS_ANSWER, **WRITE_ERRORS}, **docs)
        api.add_api_route(path, add_many, methods=["POST"], name=f"add_{kind}_tags",
                          status_code=201, responses={201: TAGS_ANSWER, **WRITE_ERRORS}, **docs)
        api.add_api_route(path, clear, methods=["DELETE"], name=f"clear_{kind}_tags",
                          status_code=204, response_class=Response, responses={204: {"description": "removed"},
                                                      **WRITE_ERRORS}, **docs)
        one = f"{path}/{{tag}}"
        api.add_api_route(one, has, methods=["GET"], name=f"check_{kind}_tag", status_code=204,
                          response_class=Response,
                          responses={204: {"description": "the resource has the tag"},
                                     **READ_ERRORS}, **docs)
        api.add_api_route(one, add, methods=["PUT"], name=f"add_{kind}_tag", status_code=201,
                          response_class=Response,
                          responses={201: {"description": "added"}, **WRITE_ERRORS}, **docs)
        api.add_api_route(one, remove, methods=["DELETE"], name=f"remove_{kind}_tag",
                          status_code=204, response_class=Response, responses={204: {"description": "removed"},
                                                      **WRITE_ERRORS}, **docs)

    for coll, (kind, _) in TAGGED.items():
        register(coll, kind)
    return api
