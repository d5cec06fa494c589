"""``/v2.0/qos/policies[/{id}]``, ``/v2.0/qos/policies/{id}/bandwidth_limit_rules[/{rule}]``
and ``/v2.0/qos/rule-types[/{type}]``: Neutron's QoS API for bandwidth limits (one
transaction per request)."""
# no `from __future__ import annotations`: FastAPI reads the body types at definition time
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..service.policy import Policy
from ..service.qos import Qos, policy_not_found, rule_not_found
from ..store.database import Database
from .links import page_body
from .resources import READ_ERRORS, WRITE_ERRORS, checked_query, ctx_of
from .schemas.base import clean_text
from .schemas.qos import (CreatePolicyRequest, CreateRuleRequest, PolicyList, PolicyOne,
                          RuleList, RuleOne, UpdatePolicyRequest, UpdateRuleRequest)

TAGS = ["qos"]


def _id(text: str, missing) -> str:
    if clean_text(text) or len(text) > 255:  # text the database cannot compare: absent
        raise missing
    return text


def router(db: Database, policy: Policy) -> APIRouter:
    api = APIRouter()
    qos = Qos(policy)
    coll = "/v2.0/qos/policies"
    item = coll + "/{pid}"
    rules = item + "/bandwidth_limit_rules"
    rule = rules + "/{rid}"

    def pol(pid: str) -> str:
        return _id(pid, policy_not_found(pid))

    @api.get(coll, tags=TAGS, response_model=None,
             responses={200: {"model": PolicyList}, **READ_ERRORS})
    def list_(request: Request):
        query = checked_query(list(request.query_params.multi_items()))
        with db.read() as s:
            return JSONResponse(page_body(request, "policies",
                                          qos.list(s, ctx_of(request), query)))

    @api.get(item, tags=TAGS, response_model=None,
             responses={200: {"model": PolicyOne}, **READ_ERRORS})
    def show(pid: str, request: Request):
        with db.read() as s:
            return JSONResponse({"policy": qos.show(s, ctx_of(request), pol(pid),
                                                    request.query_params.getlist("fields"))})

    @api.post(coll, tags=TAGS, status_code=201, response_model=None,
              responses={201: {"model": PolicyOne}, **WRITE_ERRORS})
    def create(request: Request, body: CreatePolicyRequest):
        with db.tx() as s:
            return JSONResponse({"policy": qos.create(s, ctx_of(request),
                                                      body.policy.attrs())}, status_code=201)

    @api.put(item, tags=TAGS, response_model=None,
             responses={200: {"model": PolicyOne}, **WRITE_ERRORS})
    def update(pid: str, request: Request, body: UpdatePolicyRequest):
        with db.tx() as s:
            return JSONResponse({"policy": qos.update(s, ctx_of(request), pol(pid),
                                                      body.policy.attrs())})

    @api.delete(item, tags=TAGS, status_code=204, response_class=Response,
                responses={204: {"description": "deleted"}, **WRITE_ERRORS})
    def delete(pid: str, request: Request):
        with db.tx() as s:
            qos.delete(s, ctx_of(request), pol(pid))
        return Response(status_code=204)

    @api.get(rules, tags=TAGS, response_model=None,
             responses={200: {"model": RuleList}, **READ_ERRORS})
    def list_rules(pid: str, request: Request):
        query = checked_query(list(request.query_params.multi_items()))
        with db.read() as s:
            return JSONResponse({"bandwidth_limit_rules": qos.list_rules(
                s, ctx_of(request), pol(pid), query)})

    @api.get(rule, tags=TAGS, response_model=None,
             responses={200: {"model": RuleOne}, **READ_ERRORS})
    def show_rule(pid: str, rid: str, request: Request):
        with db.read() as s:
            return JSONResponse({"bandwidth_limit_rule": qos.show_rule(
                s, ctx_of(request), pol(pid), _id(rid, rule_not_found(rid, pid)),
                request.query_params.getlist("fields"))})

    @api.post(rules, tags=TAGS, status_code=201, response_model=None,
              responses={201: {"model": RuleOne}, **WRITE_ERRORS})
    def create_rule(pid: str, request: Request, body: CreateRuleRequest):
        with db.tx() as s:
            return JSONResponse({"bandwidth_limit_rule": qos.create_rule(
                s, ctx_of(request), pol(pid), body.bandwidth_limit_rule.attrs())},
                status_code=201)

    @api.put(rule, tags=TAGS, response_model=None,
             responses={200: {"model": RuleOne}, **WRITE_ERRORS})
    def update_rule(pid: str, rid: str, request: Request, body: UpdateRuleRequest):
        with db.tx() as s:
            return JSONResponse({"bandwidth_limit_rule": qos.update_rule(
                s, ctx_of(request), pol(pid), _id(rid, rule_not_found(rid, pid)),
                body.bandwidth_limit_rule.attrs())})

    @api.delete(rule, tags=TAGS, status_code=204, response_class=Response,
                responses={204: {"description": "deleted"}, **WRITE_ERRORS})
    def delete_rule(pid: str, rid: str, request: Request):
        with db.tx() as s:
            qos.delete_rule(s, ctx_of(request), pol(pid), _id(rid, rule_not_found(rid, pid)))
        return Response(status_code=204)

    @api.get("/v2.0/qos/rule-types", tags=TAGS, responses=READ_ERRORS)
    def rule_types(request: Request):
        return {"rule_types": qos.rule_types(ctx_of(request))}

    @api.get("/v2.0/qos/rule-types/{name}", tags=TAGS, responses=READ_ERRORS)
    def rule_type(name: str, request: Request):
        return {"rule_type": qos.rule_type(ctx_of(request), name)}

    return api
