#!/usr/bin/env python3
"""Evaluate a ValidatingAdmissionPolicy on AdmissionRequests, as the API server does, with a real
CEL implementation (the common-expression-language package: Python bindings of the `cel` crate).

stdin:  {"policy": <ValidatingAdmissionPolicy>, "params": <the param object, e.g. a ConfigMap>,
         "requests": [<AdmissionRequest with object and oldObject>]}
stdout: one result per request:
        {"matched": bool, "allowed": bool, "messages": [str], "error": str | null}

Semantics followed (Kubernetes admissionregistration.k8s.io/v1):
- matchConstraints.resourceRules: group, version, operation and resource (with subresource) must match;
- matchConditions: every one must be true, else the policy does not apply (allowed); an error
  applies failurePolicy (Fail: denied);
- variables: evaluated in order, each visible to later ones and to validations as variables.NAME
  (not to matchConditions: the API server refuses that);
- validations: each false expression denies with its message; all failing messages are reported;
  an error applies failurePolicy.
The CEL context holds object, oldObject, request (the AdmissionRequest without the objects), params
and variables, as in the API server. Of Kubernetes' CEL libraries, the two string functions the
policy uses are provided: split(sep) and trim().
"""
import json
import sys

import cel


def rule_matches(rule, req):
    res = req["resource"]
    resource = res["resource"] + ("/" + req["subResource"] if req.get("subResource") else "")

    def has(values, v):
        return "*" in values or v in values

    return (
        has(rule.get("apiGroups", []), res["group"])
        and has(rule.get("apiVersions", []), res["version"])
        and has(rule.get("operations", []), req["operation"])
        and has(rule.get("resources", []), resource)
    )


def context(values):
    ctx = cel.Context()
    ctx.add_function("split", lambda s, sep: s.split(sep))
    ctx.add_function("trim", lambda s: s.strip())
    for k, v in values.items():
        ctx.add_variable(k, v)
    return ctx


def evaluate(policy, params, req):
    spec = policy["spec"]
    fail_closed = spec.get("failurePolicy", "Fail") == "Fail"
    out = {"matched": False, "allowed": True, "messages": [], "error": None}
    if not any(rule_matches(r, req) for r in spec["matchConstraints"]["resourceRules"]):
        return out
    request = {k: v for k, v in req.items() if k not in ("object", "oldObject")}
    values = {"object": req.get("object"), "oldObject": req.get("oldObject"), "request": request,
              "params": params, "variables": {}}

    def failed(what, err):
        out["error"] = f"{what}: {err}"
        out["allowed"] = not fail_closed
        return out

    def run(expr):
        return cel.evaluate(expr, context(values))

    for cond in spec.get("matchConditions", []):
        try:
            ok = run(cond["expression"])
        except Exception as err:  # noqa: BLE001 - any evaluation error applies failurePolicy
            return failed(f"matchCondition {cond['name']}", err)
        if ok is not True:
            return out
    for var in spec.get("variables", []):
        try:
            values["variables"] = dict(values["variables"], **{var["name"]: run(var["expression"])})
        except Exception as err:  # noqa: BLE001
            return failed(f"variable {var['name']}", err)
    out["matched"] = True
    for v in spec.get("validations", []):
        try:
            ok = run(v["expression"])
        except Exception as err:  # noqa: BLE001
            return failed(f"validation {v['expression']!r}", err)
        if ok is not True:
            out["allowed"] = False
            out["messages"].append(v["message"])
    return out


def main():
    data = json.load(sys.stdin)
    json.dump([evaluate(data["policy"], data.get("params"), r) for r in data["requests"]], sys.stdout)


if __name__ == "__main__":
    main()
