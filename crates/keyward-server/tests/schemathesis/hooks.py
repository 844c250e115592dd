"""Schemathesis hooks for keyward's own run (crates/keyward-server/tests/schemathesis.rs).

The authenticated run presents one API key for its whole length, and that key can
manage the caller's keys: Schemathesis learns key ids from responses (the key list,
`/api/v1/me`) and would sooner or later revoke or roll the run's own key, after which
every request of the run gets `401`. So a request that would revoke or roll the run's
key is sent for a spare key of the same person instead: the route is still exercised
(`204`, `200`, or `404` once the spare is revoked) and the run's key survives.
"""

import os

import schemathesis

RUN_KEY_ID = os.environ["KEYWARD_RUN_KEY_ID"]
SPARE_KEY_ID = os.environ["KEYWARD_SPARE_KEY_ID"]


@schemathesis.hook
def before_call(context, case, kwargs):
    parameters = case.path_parameters
    if parameters and parameters.get("id") == RUN_KEY_ID and case.operation.path.startswith("/api/v1/api-keys/"):
        parameters["id"] = SPARE_KEY_ID
