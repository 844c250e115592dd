"""A real OAuth client against a running keyward: authlib's requests integration asks the
token endpoint for client_credentials tokens the ways applications do, with authlib's
defaults (no form-encoding of Basic credentials, private_key_jwt assertions that expire
one hour ahead).

Run by tests/api/real_clients.rs with the keyward server's address and the clients it
made on stdin (JSON); prints one JSON object on stdout: for each case, the access token
or the error; plus what authlib's default assertion looked like. Exits non-zero only if
it cannot run at all: the Rust test judges the results.
"""

import json
import sys

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey


def fetch(client_id, secret, method, token_endpoint, auth=None, scope=None):
    session = OAuth2Session(client_id, secret, token_endpoint_auth_method=method, scope=scope)
    if auth is not None:
        session.register_client_auth_method(auth)
    try:
        token = session.fetch_token(token_endpoint, grant_type="client_credentials")
        return {"access_token": token["access_token"], "scope": token.get("scope")}
    except Exception as e:  # reported to the Rust test, which fails with it
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    cfg = json.load(sys.stdin)
    token_endpoint = cfg["token_endpoint"]
    audience = cfg["audience"]
    out = {}
    secret_client = cfg["secret_client"]
    for method in ["client_secret_basic", "client_secret_post"]:
        out[method] = fetch(secret_client["id"], secret_client["secret"], method, token_endpoint)
    # An imported secret with '+', '%' and ':', which authlib sends unencoded in Basic.
    imported = cfg["imported_client"]
    for method in ["client_secret_basic", "client_secret_post"]:
        out["imported_" + method] = fetch(imported["id"], imported["secret"], method, token_endpoint)
    # Scope: every scope the server supports, as the MCP SDK asks.
    out["every_scope"] = fetch(
        secret_client["id"], secret_client["secret"], "client_secret_basic", token_endpoint, scope=cfg["every_scope"]
    )

    keyed = cfg["keyed_client"]
    keys = {
        "RS256": RSAKey.import_key(keyed["rsa_private_pem"]),
        "ES256": ECKey.import_key(keyed["ec_private_pem"]),
        "Ed25519": OKPKey.import_key(keyed["ed25519_private_pem"]),
    }
    for alg, key in keys.items():
        # authlib's own client path, its defaults but for the algorithm; the audience is
        # the token endpoint URL the server knows itself by (its public_url).
        out["private_key_jwt_" + alg] = fetch(
            keyed["id"], key, "private_key_jwt", token_endpoint, auth=PrivateKeyJWT(audience, alg=alg)
        )
    # What authlib's default assertion claims (unverified read of its own token).
    assertion = private_key_jwt_sign(keys["RS256"], keyed["id"], audience)
    claims = jwt.decode(assertion, keys["RS256"]).claims
    out["default_assertion"] = {"exp_minus_iat": claims["exp"] - claims["iat"], "alg": "RS256"}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
