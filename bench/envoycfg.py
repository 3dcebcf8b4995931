"""Envoy bootstraps (as JSON) for every setup the benchmark compares.

Every setup answers the same request the same way behind its filters: either a direct_response in
the Envoy under test (default), or a route to one shared upstream Envoy. Only the HTTP filters differ.
Policies are equivalent across setups: GET under /api needs a valid token from the bench issuer, for
the bench audience, with the `items:read` scope, and passes one high-limit rate limiter; anything
else is refused.
"""

from __future__ import annotations

import json

from keys import AUDIENCE, ISSUER, JWKS_PATH

LOOPBACK = "127.0.0.1"
API_PATH = "/api/items"
SCOPE_READ = "items:read"
SCOPE_WRITE = "items:write"
# High enough that nothing is ever limited, low enough for any sane validation of the field.
RL_REQUESTS = 100_000
RL_BURST = 100_000

# The 1 KiB body the full policy validates; see body_1k().
ITEM_SCHEMA = {
    "type": "object",
    "required": ["name", "sku", "quantity", "price", "tags", "description"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
        "price": {"type": "number", "minimum": 0},
        "tags": {"type": "array", "maxItems": 16, "items": {"type": "string", "maxLength": 32}},
        "attributes": {"type": "object"},
        "description": {"type": "string", "maxLength": 2048},
    },
}


def body_1k() -> bytes:
    """A JSON object that satisfies ITEM_SCHEMA, exactly 1024 bytes long."""
    doc = {
        "name": "Benchmark widget",
        "sku": "ABC-1234",
        "quantity": 3,
        "price": 12.5,
        "tags": ["bench", "widget", "blue", "large", "sale", "new"],
        "description": "",
    }
    base = len(json.dumps(doc, separators=(",", ":")).encode())
    doc["description"] = ("lorem ipsum dolor sit amet " * 60)[: 1024 - base]
    out = json.dumps(doc, separators=(",", ":")).encode()
    assert len(out) == 1024, len(out)
    return out


def _socket(port: int) -> dict:
    return {"socket_address": {"address": LOOPBACK, "port_value": port}}


def _static_cluster(name: str, port: int) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(port)}}]}],
        },
    }


def _router() -> dict:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        },
    }


def _buffer() -> dict:
    # A direct_response that answers before the request body has arrived makes Envoy close an
    # HTTP/1.1 connection per POST; reading the whole request first keeps connections alive, and
    # costs the same in every setup (it is a pass-through once a filter before it has buffered).
    return {
        "name": "envoy.filters.http.buffer",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
            "max_request_bytes": 1048576,
        },
    }


def _bootstrap(http_filters: list, route_action: dict, clusters: list) -> dict:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bench",
        "codec_type": "AUTO",
        "route_config": {
            "name": "local",
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, **route_action}],
                }
            ],
        },
        "http_filters": http_filters
        + ([_buffer()] if "direct_response" in route_action else [])
        + [_router()],
    }
    return {
        "admin": {"address": _socket(0)},
        "static_resources": {
            "listeners": [
                {
                    "name": "main",
                    "address": _socket(0),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters,
        },
    }


def direct_response() -> dict:
    return {"direct_response": {"status": 200, "body": {"inline_string": "ok"}}}


def upstream_bootstrap() -> dict:
    """The shared upstream (used with --upstream proxy): answers 200 to everything."""
    return _bootstrap([], direct_response(), [])


# ---- native chain -------------------------------------------------------------------------------


def native_filters(jwks: dict, jwks_mode: str, jwks_port: int, cache: bool) -> list:
    """jwt_authn + rbac + local_ratelimit with the bench policy."""
    provider = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "forward": False,
        "payload_in_metadata": "jwt_payload",
    }
    if jwks_mode == "local":
        provider["local_jwks"] = {"inline_string": json.dumps(jwks)}
    else:
        provider["remote_jwks"] = {
            "http_uri": {
                "uri": f"http://{LOOPBACK}:{jwks_port}{JWKS_PATH}",
                "cluster": "jwks",
                "timeout": "1.5s",
            },
            "cache_duration": "600s",
            # Fetch at start, as meshguard does, so the first request does not pay for it.
            "async_fetch": {},
        }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 1000}
    jwt_authn = {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3."
            "JwtAuthentication",
            "providers": {"main": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "main"}}],
        },
    }
    # `scope` is space-delimited: match the whole word, as meshguard does.
    scope_re = f"^(.* )?{SCOPE_READ}( .*)?$"
    rbac = {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {
                "action": "ALLOW",
                "policies": {
                    "api-read": {
                        "permissions": [
                            {
                                "and_rules": {
                                    "rules": [
                                        {"url_path": {"path": {"prefix": "/api/"}}},
                                        {
                                            "header": {
                                                "name": ":method",
                                                "string_match": {"exact": "GET"},
                                            }
                                        },
                                    ]
                                }
                            }
                        ],
                        "principals": [
                            {
                                "metadata": {
                                    "filter": "envoy.filters.http.jwt_authn",
                                    "path": [{"key": "jwt_payload"}, {"key": "scope"}],
                                    "value": {
                                        "string_match": {"safe_regex": {"regex": scope_re}}
                                    },
                                }
                            }
                        ],
                    }
                },
            },
        },
    }
    pct100 = {"numerator": 100, "denominator": "HUNDRED"}
    ratelimit = {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3."
            "LocalRateLimit",
            "stat_prefix": "bench_rl",
            "token_bucket": {
                "max_tokens": RL_BURST,
                "tokens_per_fill": RL_REQUESTS,
                "fill_interval": "1s",
            },
            "filter_enabled": {"runtime_key": "bench_rl_enabled", "default_value": pct100},
            "filter_enforced": {"runtime_key": "bench_rl_enforced", "default_value": pct100},
        },
    }
    return [jwt_authn, rbac, ratelimit]


# ---- meshguard ----------------------------------------------------------------------------------


def _mg_provider(jwks: dict, jwks_mode: str) -> dict:
    provider = {
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "algorithms": ["RS256", "ES256", "EdDSA"],
    }
    if jwks_mode == "local":
        provider["local_jwks"] = {"inline_string": json.dumps(jwks)}
    else:
        provider["remote_jwks"] = {
            "cluster": "jwks",
            "path": JWKS_PATH,
            "authority": LOOPBACK,
            "timeout_ms": 1500,
            "cache_duration_seconds": 600,
        }
    return provider


def mg_routes_policy() -> dict:
    """Foundation only: the route table, no JWT (what the main branch supports today)."""
    return {
        "mode": "enforce",
        "unmatched": "deny",
        "routes": [{"name": "items-read", "match": {"methods": ["GET"], "prefix": "/api"}}],
    }


def _mg_policy(jwks: dict, jwks_mode: str, routes: list[dict]) -> dict:
    return {
        "mode": "enforce",
        "unmatched": "deny",
        "jwt_providers": {"main": _mg_provider(jwks, jwks_mode)},
        "routes": routes,
    }


def _mg_read_route(limit_key: str) -> dict:
    """GET /api with a read-scope token, rate-limited per `limit_key`."""
    return {
        "name": "items-read",
        "match": {"methods": ["GET"], "prefix": "/api"},
        "jwt": {"providers": ["main"], "scopes": [SCOPE_READ]},
        "rate_limits": [_mg_limit(limit_key)],
    }


def _mg_limit(key: str) -> dict:
    return {"key": key, "requests": RL_REQUESTS, "per_seconds": 1, "burst": RL_BURST}


def mg_equivalent_policy(jwks: dict, jwks_mode: str) -> dict:
    """The native chain's checks: token, issuer, audience, scope, method/path, rate limit."""
    return _mg_policy(jwks, jwks_mode, [_mg_read_route("route")])


def mg_jwt_policy(jwks: dict, jwks_mode: str) -> dict:
    """mg-eq without its rate limit: what the limit costs is the difference."""
    route = {k: v for k, v in _mg_read_route("route").items() if k != "rate_limits"}
    return _mg_policy(jwks, jwks_mode, [route])


def mg_full_policy(jwks: dict, jwks_mode: str) -> dict:
    """More than the native chain can do: per-subject rate limit and a JSON body schema."""
    write = {
        "name": "items-write",
        "match": {"methods": ["POST"], "path": API_PATH},
        "jwt": {"providers": ["main"], "scopes": [SCOPE_WRITE]},
        "request": {
            "max_body_bytes": 65536,
            "content_types": ["application/json"],
            "body_schema": ITEM_SCHEMA,
        },
        "rate_limits": [_mg_limit("jwt:sub")],
    }
    return _mg_policy(jwks, jwks_mode, [_mg_read_route("jwt:sub"), write])


def wasm_filter(wasm_path: str, policy: dict | None, name: str = "meshguard") -> dict:
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": name,
                "root_id": name,
                "vm_config": {
                    "vm_id": name,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm_path}},
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": "" if policy is None else json.dumps(policy, separators=(",", ":")),
                },
                "fail_open": False,
            },
        },
    }


# ---- setups -------------------------------------------------------------------------------------


def setup_bootstrap(
    setup: str,
    *,
    wasm_path: str,
    noop_wasm_path: str,
    verify_wasm_path: str,
    jwks: dict,
    jwks_mode: str,
    jwks_port: int,
    upstream_port: int | None,
) -> dict:
    """The Envoy-under-test bootstrap for one setup (see SETUPS in run.py)."""
    clusters = []
    # wasm-verify takes its keys inline (its plugin configuration is the JWKS) whatever jwks_mode.
    if jwks_mode == "remote" and setup not in ("baseline", "wasm-noop", "wasm-verify",
                                                "mg-routes"):
        clusters.append(_static_cluster("jwks", jwks_port))
    if upstream_port is None:
        action = direct_response()
    else:
        action = {"route": {"cluster": "upstream"}}
        clusters.append(_static_cluster("upstream", upstream_port))
    if setup == "baseline":
        filters = []
    elif setup == "wasm-noop":
        filters = [wasm_filter(noop_wasm_path, None, name="noop")]
    elif setup == "wasm-verify":
        # bench/verify: signature only, the JWKS as its plugin configuration.
        filters = [wasm_filter(verify_wasm_path, jwks, name="verify")]
    elif setup == "native-nocache":
        filters = native_filters(jwks, jwks_mode, jwks_port, cache=False)
    elif setup == "native-cache":
        filters = native_filters(jwks, jwks_mode, jwks_port, cache=True)
    elif setup == "mg-routes":
        filters = [wasm_filter(wasm_path, mg_routes_policy())]
    elif setup == "mg-jwt":
        filters = [wasm_filter(wasm_path, mg_jwt_policy(jwks, jwks_mode))]
    elif setup == "mg-eq":
        filters = [wasm_filter(wasm_path, mg_equivalent_policy(jwks, jwks_mode))]
    elif setup == "mg-full":
        filters = [wasm_filter(wasm_path, mg_full_policy(jwks, jwks_mode))]
    else:
        raise ValueError(f"unknown setup {setup}")
    return _bootstrap(filters, action, clusters)
