"""Signing keys, the JWKS they publish, JWT minting and a loopback JWKS server for the benchmark.

Keys and the pool of distinct tokens are cached under bench/results/.cache so that minting thousands
of RS256 tokens (about 0.7 ms each) is paid once, not on every run; the cache is rebuilt when it is
older than CACHE_MAX_AGE_S, smaller than the pool asked for, or unreadable.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISSUER = "https://issuer.bench.meshguard"
AUDIENCE = "api.bench"
SCOPE = "items:read items:write"
ALGS = ("RS256", "ES256", "EdDSA")
KIDS = {"RS256": "bench-rs256", "ES256": "bench-es256", "EdDSA": "bench-eddsa"}
JWKS_PATH = "/.well-known/jwks.json"

# Token lifetime: under a day so that a default max lifetime of one day never refuses them.
TOKEN_LIFETIME_S = 20 * 3600
# Rebuild the cache well before its tokens expire.
CACHE_MAX_AGE_S = 8 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class Keys:
    """One private key per algorithm, with its public JWK."""

    def __init__(self, private: dict):
        self.private = private

    @classmethod
    def generate(cls) -> "Keys":
        return cls(
            {
                "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
                "ES256": ec.generate_private_key(ec.SECP256R1()),
                "EdDSA": ed25519.Ed25519PrivateKey.generate(),
            }
        )

    def to_pem(self) -> dict:
        return {
            alg: k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode("ascii")
            for alg, k in self.private.items()
        }

    @classmethod
    def from_pem(cls, pem: dict) -> "Keys":
        return cls(
            {
                alg: serialization.load_pem_private_key(pem[alg].encode("ascii"), password=None)
                for alg in ALGS
            }
        )

    def jwk(self, alg: str) -> dict:
        pub = self.private[alg].public_key()
        base = {"kid": KIDS[alg], "alg": alg, "use": "sig"}
        if alg == "RS256":
            nums = pub.public_numbers()
            return {**base, "kty": "RSA", "n": _int_b64(nums.n), "e": _int_b64(nums.e)}
        if alg == "ES256":
            nums = pub.public_numbers()
            return {
                **base,
                "kty": "EC",
                "crv": "P-256",
                "x": b64url(nums.x.to_bytes(32, "big")),
                "y": b64url(nums.y.to_bytes(32, "big")),
            }
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {**base, "kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}

    def jwks(self) -> dict:
        return {"keys": [self.jwk(alg) for alg in ALGS]}

    def sign(self, alg: str, signing_input: bytes) -> bytes:
        key = self.private[alg]
        if alg == "RS256":
            return key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        if alg == "ES256":
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return key.sign(signing_input)

    def mint(self, alg: str, now: int, n: int = 0, scope: str = SCOPE) -> str:
        """A JWT for the bench issuer and audience; `n` makes it distinct (jti, sub)."""
        header = {"alg": alg, "typ": "JWT", "kid": KIDS[alg]}
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"user-{n % 1000}",
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_S,
            "jti": f"{alg}-{now}-{n}",
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        sig = self.sign(alg, signing_input.encode("ascii"))
        return signing_input + "." + b64url(sig)


class TokenSet:
    """What a run needs: keys, one reused token per alg, a pool file of distinct tokens per alg,
    and a token lacking the scopes (to prove that the policy is enforced)."""

    def __init__(self, keys: Keys, pools: dict, reused: dict, noscope: str):
        self.keys = keys
        self.pools = pools  # alg -> Path of a file with one token a line
        self.reused = reused  # alg -> token
        self.noscope = noscope


def prepare_tokens(cache_dir: Path, pool_size: int, log=print) -> TokenSet:
    """Loads keys and token pools from the cache or mints them."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    meta_path = cache_dir / "keys.json"
    now = int(time.time())
    keys = None
    try:
        meta = json.loads(meta_path.read_text())
        fresh = now - int(meta["created"]) < CACHE_MAX_AGE_S
        complete = int(meta["pool_size"]) >= pool_size and all(
            (cache_dir / f"tokens-{alg}.txt").is_file() for alg in ALGS
        )
        if fresh and complete:
            keys = Keys.from_pem(meta["pem"])
    except (OSError, ValueError, KeyError, TypeError):
        keys = None
    pools = {alg: cache_dir / f"tokens-{alg}.txt" for alg in ALGS}
    if keys is None:
        keys = Keys.generate()
        t0 = time.monotonic()
        log(f"minting {pool_size} distinct tokens per algorithm (cached for later runs) ...")
        for alg in ALGS:
            tmp = pools[alg].with_suffix(".tmp")
            with open(tmp, "w") as f:
                for i in range(pool_size):
                    f.write(keys.mint(alg, now, i + 1000) + "\n")
            os.replace(tmp, pools[alg])
        meta = {"created": now, "pool_size": pool_size, "pem": keys.to_pem()}
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, meta_path)
        log(f"minted in {time.monotonic() - t0:.1f}s")
    reused = {alg: keys.mint(alg, now, 0) for alg in ALGS}
    noscope = keys.mint("ES256", now, 1, scope="profile")
    return TokenSet(keys, pools, reused, noscope)


class JwksServer:
    """A loopback HTTP server publishing the JWKS; counts the fetches it serves."""

    def __init__(self, jwks: dict):
        body = json.dumps(jwks).encode()
        server_self = self
        self.fetches = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server naming)
                if self.path.split("?")[0] != JWKS_PATH:
                    self.send_error(404)
                    return
                server_self.fetches += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "JwksServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
