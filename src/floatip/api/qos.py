"""``/v2.0/qos/policies[/{id}]``, ``/v2.0/qos/policies/{id}/bandwidth_limit_rules[/{rule}]``
and ``/v2.0/qos/rule-types[/{type}]``: Neutron's QoS API for bandwidth limits (one
transaction per request)."""
# no `from __future__ import annotations`: FastAPI reads the body types at definition time
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..service.policy import Policy
from ..service.qos import Qos, policy_not_found, rule_not_found
from ..store.database import Database
from .crud import checked, crud
from .resources import READ_ERRORS, WRITE_ERRORS, checked_query, ctx_of
from .schemas.qos import (CreatePolicyRequest, CreateRuleRequest, PolicyList, PolicyOne,
                          RuleList, RuleOne, UpdatePolicyRequest, UpdateRuleRequest)

TAGS = ["qos"]


def router(db: Database, policy: Policy) -> APIRouter:
    api = APIRouter()
    qos = Qos(policy)
    rules = "/v2.0/qos/policies/{pid}/bandwidth_limit_rules"
    rule = rules + "/{rid}"
    pol = crud(api, db, qos, coll="/v2.0/qos/policies", param="pid", key="policy",
               plural="policies", create=CreatePolicyRequest, update=UpdatePolicyRequest,
               one=PolicyOne, listed=PolicyList, missing=policy_not_found, tags=TAGS)

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
                s, ctx_of(request), pol(pid), checked(rid, rule_not_found(rid, pid)),
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
                s, ctx_of(request), pol(pid), checked(rid, rule_not_found(rid, pid)),
                body.bandwidth_limit_rule.attrs())})

    @api.delete(rule, tags=TAGS, status_code=204, response_class=Response,
                responses={204: {"description": "deleted"}, **WRITE_ERRORS})
    def delete_rule(pid: str, rid: str, request: Request):
        with db.tx() as s:
            qos.delete_rule(s, ctx_of(request), pol(pid), checked(rid, rule_not_found(rid, pid)))
        return Response(status_code=204)

    @api.get("/v2.0/qos/rule-types", tags=TAGS, responses=READ_ERRORS)
    def rule_types(request: Request):
        return {"rule_types": qos.rule_types(ctx_of(request))}

    @api.get("/v2.0/qos/rule-types/{name}", tags=TAGS, responses=READ_ERRORS)
    def rule_type(name: str, request: Request):
        return {"rule_type": qos.rule_type(ctx_of(request), name)}

    return api
