"""Schemathesis hooks for tests/conformance.rs.

- Tool uploads are WebAssembly components (`application/wasm`): sent as raw
  bytes, the way schemathesis sends `application/octet-stream`.
- The tokens the harness authenticates with are never revoked mid-run: a
  generated `DELETE /v1/tokens/{name}` that names one of them (listed in
  AIRLOCK_CONFORMANCE_KEEP, comma-separated) is dropped, so an admin run
  cannot lock every later request out with 401.
"""

import os

import schemathesis

schemathesis.serializer.alias("application/wasm", "application/octet-stream")

KEPT = {name for name in os.environ.get("AIRLOCK_CONFORMANCE_KEEP", "").split(",") if name}


@schemathesis.hook("filter_path_parameters").apply_to(method="DELETE", path="/v1/tokens/{name}")
def keep_the_harness_tokens(context, path_parameters):
    return path_parameters.get("name") not in KEPT
