#!/usr/bin/env python3
"""Evaluate a ValidatingAdmissionPolicy on AdmissionRequests, as the API server does, with a real
CEL implementation (the common-expression-language package: Python bindings of the `cel` crate).

stdin:  {"policy": <ValidatingAdmissionPolicy>, "requests": [<AdmissionRequest with object and oldObject>]}
stdout: one result per request:
        {"matched": bool, "allowed": bool, "messages": [str], "error": str | null}

Semantics followed (Kubernetes admissionregistration.k8s.io/v1):
- matchConstraints.resourceRules: group, version, operation and resource (with subresource) must match;
- matchConditions: every one must be true, else the policy does not apply (allowed); an error
  applies failurePolicy (Fail: denied);
- variables: evaluated in order, each visible to later ones and to validations as variables.NAME;
- validations: each false expression denies with its message; all failing messages are reported;
  an error applies failurePolicy.
The CEL context holds object, oldObject, request (the AdmissionRequest without the objects) and
variables, as in the API server.
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


def evaluate(policy, req):
    spec = policy["spec"]
    fail_closed = spec.get("failurePolicy", "Fail") == "Fail"
    out = {"matched": False, "allowed": True, "messages": [], "error": None}
    if not any(rule_matches(r, req) for r in spec["matchConstraints"]["resourceRules"]):
        return out
    request = {k: v for k, v in req.items() if k not in ("object", "oldObject")}
    ctx = {"object": req.get("object"), "oldObject": req.get("oldObject"), "request": request}

    def failed(what, err):
        out["error"] = f"{what}: {err}"
        out["allowed"] = not fail_closed
        return out

    for cond in spec.get("matchConditions", []):
        try:
            ok = cel.evaluate(cond["expression"], ctx)
        except Exception as err:  # noqa: BLE001 - any evaluation error applies failurePolicy
            return failed(f"matchCondition {cond['name']}", err)
        if ok is not True:
            return out
    out["matched"] = True
    variables = {}
    ctx["variables"] = variables
    for var in spec.get("variables", []):
        try:
            variables[var["name"]] = cel.evaluate(var["expression"], ctx)
        except Exception as err:  # noqa: BLE001
            return failed(f"variable {var['name']}", err)
    for v in spec.get("validations", []):
        try:
            ok = cel.evaluate(v["expression"], ctx)
        except Exception as err:  # noqa: BLE001
            return failed(f"validation {v['expression']!r}", err)
        if ok is not True:
            out["allowed"] = False
            out["messages"].append(v["message"])
    return out


def main():
    data = json.load(sys.stdin)
    json.dump([evaluate(data["policy"], r) for r in data["requests"]], sys.stdout)


if __name__ == "__main__":
    main()
