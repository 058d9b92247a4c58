#!/usr/bin/env python3
"""The token service of a registry that uses token auth (Docker's "token authentication
specification", as Docker Hub, GHCR and ECR's v2 endpoints do it), for tests/k8s/registry.sh.

The registry answers an unauthenticated request with 401 and
`WWW-Authenticate: Bearer realm=".../token",service="...",scope="repository:NAME:pull"`.
A client then GETs the realm with service and scope (and Basic credentials), and sends the
token it gets as `Authorization: Bearer`. This server checks the credentials and issues a
JWT (RS256, x5c header naming the signing certificate the registry trusts) that grants the
asked actions. Wrong credentials: 401, as real token services answer.

Only the standard library and the openssl command are used (the signature is made by
`openssl dgst -sign`), so nothing extra is installed for it.
"""

import argparse
import base64
import http.server
import json
import secrets
import ssl
import subprocess
import time
import urllib.parse


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_of(pem_path: str) -> bytes:
    text = open(pem_path).read()
    body = text.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
    return base64.b64decode("".join(body.split()))


def sign(key: str, data: bytes) -> bytes:
    return subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", key], input=data, capture_output=True, check=True
    ).stdout


def token(args, subject: str, scopes: list) -> str:
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der_of(args.signing_cert)).decode()]}
    now = int(time.time())
    access = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) >= 3 and parts[0] == "repository":
            access.append({"type": "repository", "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
    claims = {
        "iss": args.issuer, "sub": subject, "aud": args.service, "exp": now + 300, "nbf": now - 10,
        "iat": now, "jti": secrets.token_hex(8), "access": access,
    }
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    return signing_input.decode() + "." + b64url(sign(args.signing_key, signing_input))


def handler(args):
    user, _, password = args.credentials.partition(":")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            print(fmt % a, flush=True)

        def reply(self, code, body, headers=()):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            if url.path == "/healthz":
                return self.reply(200, {"ok": True})
            if url.path != "/token":
                return self.reply(404, {"error": "not found"})
            query = urllib.parse.parse_qs(url.query)
            if query.get("service", [""])[0] != args.service:
                return self.reply(400, {"error": "unknown service"})
            got = self.headers.get("Authorization", "")
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if got != expected:
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                                  [("WWW-Authenticate", 'Basic realm="binfmtd-test-token"')])
            jwt = token(args, user, query.get("scope", []))
            self.reply(200, {"token": jwt, "access_token": jwt, "expires_in": 300,
                             "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag in ["--listen", "--cert", "--key", "--signing-key", "--signing-cert", "--service", "--issuer",
                 "--credentials"]:
        p.add_argument(flag, required=True)
    args = p.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), handler(args))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
