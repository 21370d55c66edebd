"""A real OpenID Connect provider on 127.0.0.1, for tests.

It speaks the authorization code flow with PKCE over real HTTP, as strictly as a real provider:
registered client and redirect URI, S256 only, single-use codes bound to their client, redirect
URI and challenge, client authentication by one of the advertised methods. It approves every
request at once, as the user named by ``login_hint`` or else ``next_user``, so a test needs no
browser: GET the authorization URL and read the 302.

``misbehaviours`` make it issue ID tokens a client must refuse. PKCE is checked here with
hashlib, independently of the client's code, so a bug on either side shows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import hmac
import re
import secrets
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlencode

import jwt as pyjwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from backend.runtime import Clock, SystemClock

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"
REDIRECT_URI = "https://app.example/api/auth/callback/google"
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")


@dataclass(frozen=True)
class TestUser:
    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    sub: str
    email: str
    email_verified: bool = True
    name: str | None = None


class Misbehaviour(Enum):
    WRONG_NONCE = "wrong nonce"
    WRONG_AUDIENCE = "wrong audience"
    WRONG_ISSUER = "wrong issuer"
    EXPIRED_ID_TOKEN = "expired id token"
    BAD_SIGNATURE = "bad signature"  # signed by another key under the published kid


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    user: TestUser
    nonce: str
    challenge: str
    used: bool = False


class OidcProvider:
    """The provider's state and its Starlette app. Tests may change the public attributes at
    any time; discovery-level ones (``token_auth_methods``) before a client first looks."""

    def __init__(
        self,
        base_url: str,
        users: dict[str, TestUser],
        *,
        client_id: str,
        client_secret: str | None,
        redirect_uris: Iterable[str],
        clock: Clock,
        tenant_id: str | None,
    ) -> None:
        self.base_url = base_url
        self.users = users
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = frozenset(redirect_uris)
        self.clock = clock
        # Microsoft style: discovery names "{tenantid}", tokens the tenant and its "tid".
        self.tenant_id = tenant_id
        self.next_user: str | None = None
        self.misbehaviours: set[Misbehaviour] = set()
        self.email_in_id_token = True
        self.id_token_lifetime = timedelta(hours=1)
        self.token_auth_methods: tuple[str, ...] = (
            ("client_secret_basic", "client_secret_post") if client_secret else ("none",)
        )
        self.requests: Counter[str] = Counter()  # by path
        self.jwks_delay = 0.0  # seconds the JWKS takes to answer
        self.jwks_padding = 0  # extra keys in the JWKS
        self.token_auth_used: list[str] = []
        self._grants: dict[str, _Grant] = {}
        self._access_tokens: dict[str, TestUser] = {}
        self._kid, self._key = secrets.token_urlsafe(8), _shared_key("signing")
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo),
                Route("/test/mint", self._test_mint, methods=["POST"]),
            ]
        )

    @property
    def issuer(self) -> str:
        """The issuer as discovery states it (a template in tenant mode)."""
        return f"{self.base_url}/{{tenantid}}/v2.0" if self.tenant_id else self.base_url

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/.well-known/openid-configuration"

    def mint(
        self,
        sub: str,
        *,
        audience: str | None = None,
        lifetime: timedelta = timedelta(hours=1),
        issued_ago: timedelta = timedelta(0),
        kid: str | None = None,
        forged: bool = False,
        **claims: Any,
    ) -> str:
        """A JWT this provider signs for ``sub`` (the token Clerk or Auth0 hands a browser to
        pass to Convex's ``setAuth``): ``aud`` is ``audience`` (the client id by default),
        ``iss`` the issuer; ``forged`` signs with another key under the published kid."""
        now = int(self.clock.now().timestamp()) - int(issued_ago.total_seconds())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience or self.client_id,
            "iat": now,
            "exp": now + int(lifetime.total_seconds()),
            **claims,
        }
        key = _shared_key("forging") if forged else self._key
        return pyjwt.encode(payload, key, algorithm="RS256", headers={"kid": kid or self._kid})

    def public_jwk(self) -> dict[str, Any]:
        """The published signing key, as in the JWKS."""
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        assert isinstance(jwk, dict)
        return {**jwk, "kid": self._kid, "alg": "RS256", "use": "sig"}

    def rotate_key(self) -> None:
        """Sign from now on with a new key under a new kid, publishing only that one."""
        self._kid, self._key = secrets.token_urlsafe(8), _new_key()

    # ---- endpoints ----------------------------------------------------------------------

    async def _discovery(self, request: Request) -> Response:
        self.requests[request.url.path] += 1
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.base_url}/authorize",
                "token_endpoint": f"{self.base_url}/token",
                "userinfo_endpoint": f"{self.base_url}/userinfo",
                "jwks_uri": f"{self.base_url}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": list(self.token_auth_methods),
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        self.requests[request.url.path] += 1
        if self.jwks_delay:
            await asyncio.sleep(self.jwks_delay)
        keys: list[dict[str, Any]] = [self.public_jwk()]
        if self.jwks_padding:  # a JWKS too big to take: many more (copies of) keys
            keys += [{**self.public_jwk(), "kid": f"pad-{i}"} for i in range(self.jwks_padding)]
        return JSONResponse({"keys": keys})

    async def _test_mint(self, request: Request) -> Response:
        # For tests in another process (the JS client's): what ``mint`` returns. Only this
        # test provider has it.
        body = await request.json()
        token = self.mint(
            body["sub"],
            audience=body.get("aud"),
            forged=bool(body.get("forged")),
            **body.get("claims", {}),
        )
        return JSONResponse({"token": token})

    async def _authorize(self, request: Request) -> Response:
        self.requests[request.url.path] += 1
        query = request.query_params
        # Until client and redirect URI are known good, errors must not redirect (RFC 6749 4.1.2.1).
        if query.get("client_id") != self.client_id:
            return PlainTextResponse("unknown client_id", status_code=400)
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            return PlainTextResponse("unregistered redirect_uri", status_code=400)
        state, nonce = query.get("state"), query.get("nonce")
        scopes = query.get("scope", "").split()

        def back(**params: str) -> Response:
            return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

        if not state:
            return back(error="invalid_request", error_description="state is required")
        if query.get("response_type") != "code":
            return back(error="unsupported_response_type", state=state)
        if "openid" not in scopes or not nonce:
            return back(error="invalid_request", error_description="openid, nonce", state=state)
        challenge = query.get("code_challenge", "")
        if query.get("code_challenge_method") != "S256" or not challenge:
            return back(error="invalid_request", error_description="PKCE S256", state=state)
        user = self.users.get(query.get("login_hint") or self.next_user or "")
        if user is None:
            return back(error="login_required", state=state)
        code = secrets.token_urlsafe(24)
        self._grants[code] = _Grant(self.client_id, redirect_uri, user, nonce, challenge)
        return back(code=code, state=state)

    async def _token(self, request: Request) -> Response:
        self.requests[request.url.path] += 1
        # Parsed by hand: Starlette's form parser needs python-multipart, which we do not have.
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        form = dict(pairs)
        if len(form) != len(pairs):
            return _oauth_error("invalid_request")  # no parameter twice (RFC 6749 3.2)
        method = self._authenticate(request, form)
        if method is None:
            return _oauth_error("invalid_client", status=401)
        self.token_auth_used.append(method)
        if form.get("grant_type") != "authorization_code":
            return _oauth_error("unsupported_grant_type")
        grant = self._grants.get(form.get("code", ""))
        if grant is None or grant.used or grant.client_id != self.client_id:
            return _oauth_error("invalid_grant")
        # Spent on first presentation, even if what follows fails: no guessing at verifiers.
        grant.used = True
        if form.get("redirect_uri") != grant.redirect_uri:
            return _oauth_error("invalid_grant")
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if not _VERIFIER.fullmatch(verifier) or not hmac.compare_digest(challenge, grant.challenge):
            return _oauth_error("invalid_grant")
        access_token = secrets.token_urlsafe(24)
        self._access_tokens[access_token] = grant.user
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "openid email profile",
            "id_token": self._id_token(grant),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def _userinfo(self, request: Request) -> Response:
        self.requests[request.url.path] += 1
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        user = self._access_tokens.get(token) if scheme.lower() == "bearer" else None
        if user is None:
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return JSONResponse(_profile_claims(user))

    # ---- helpers ------------------------------------------------------------------------

    def _authenticate(self, request: Request, form: dict[str, str]) -> str | None:
        """The client authentication method used, if it is advertised and succeeds."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            if "client_secret" in form:
                return None  # one method per request (RFC 6749 2.3)
            try:
                pair = base64.b64decode(header[6:], validate=True).decode()
            except ValueError:
                return None
            client_id, _, secret = (unquote(part) for part in pair.partition(":"))
            method: str = "client_secret_basic"
            presented: str | None = secret
        else:
            client_id, presented = form.get("client_id", ""), form.get("client_secret")
            method = "none" if presented is None else "client_secret_post"
        if method not in self.token_auth_methods or client_id != self.client_id:
            return None
        if self.client_secret is None:
            return method if presented is None else None
        ok = presented is not None and hmac.compare_digest(presented, self.client_secret)
        return method if ok else None

    def _id_token(self, grant: _Grant) -> str:
        now = int(self.clock.now().timestamp())
        lifetime = int(self.id_token_lifetime.total_seconds())
        issuer = self.issuer.replace("{tenantid}", self.tenant_id or "")
        bad = self.misbehaviours
        claims: dict[str, Any] = {
            "iss": issuer.replace("127.0.0.1", "localhost")
            if Misbehaviour.WRONG_ISSUER in bad
            else issuer,
            "sub": grant.user.sub,
            "aud": "someone-else" if Misbehaviour.WRONG_AUDIENCE in bad else grant.client_id,
            "iat": now - 7200 if Misbehaviour.EXPIRED_ID_TOKEN in bad else now,
            "exp": now - 3600 if Misbehaviour.EXPIRED_ID_TOKEN in bad else now + lifetime,
            "nonce": "not-the-nonce" if Misbehaviour.WRONG_NONCE in bad else grant.nonce,
            **(_profile_claims(grant.user) if self.email_in_id_token else {}),
        }
        if self.tenant_id:
            claims["tid"] = self.tenant_id
        key = _shared_key("forging") if Misbehaviour.BAD_SIGNATURE in bad else self._key
        return pyjwt.encode(claims, key, algorithm="RS256", headers={"kid": self._kid})


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stop = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would take over Ctrl-C to stop itself; in a test run it should stop pytest.
        yield

    # uvicorn polls should_exit every 0.1 s and lets connections drain for another 0.1 s; with
    # a provider per test that would be most of the run. Tests have nothing in flight at the end.
    async def main_loop(self) -> None:
        await self.on_tick(0)
        await self.stop.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        for server in self.servers:
            await server.wait_closed()


@contextlib.asynccontextmanager
async def run_oidc_provider(
    users: dict[str, TestUser],
    *,
    client_id: str = CLIENT_ID,
    client_secret: str | None = CLIENT_SECRET,
    redirect_uris: Iterable[str] = (REDIRECT_URI,),
    clock: Clock | None = None,
    tenant_id: str | None = None,
) -> AsyncIterator[OidcProvider]:
    """Serve an ``OidcProvider`` on an ephemeral port of 127.0.0.1 until the block ends.

    ``users`` are keyed by the name a ``login_hint`` (or ``next_user``) gives. ID tokens are
    dated by ``clock`` (the system clock by default). Raises ``RuntimeError`` if the server
    does not start.
    """
    # Bound here, so the issuer URL is known before the app is built.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Without it, every request after the first on a kept-alive connection waits ~40 ms for
    # a delayed ACK (Nagle); accepted connections inherit the option.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    provider = OidcProvider(
        f"http://127.0.0.1:{port}",
        users,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=redirect_uris,
        clock=clock or SystemClock(),
        tenant_id=tenant_id,
    )
    config = uvicorn.Config(provider.app, lifespan="off", ws="none", log_level="warning")
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the test OIDC provider did not start")
            await asyncio.sleep(0.005)
        yield provider
    finally:
        server.should_exit = True
        server.stop.set()
        await task
        sock.close()


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def _shared_key(purpose: str) -> rsa.RSAPrivateKey:
    # Making an RSA key takes tens of milliseconds and every test starts a provider: the
    # first key (and the forger's) is shared. Each provider still has its own kid and URLs.
    return _new_key()


def _profile_claims(user: TestUser) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": user.sub,
        "email": user.email,
        "email_verified": user.email_verified,
    }
    if user.name is not None:
        claims["name"] = user.name
    return claims


def _oauth_error(error: str, status: int = 400) -> Response:
    return JSONResponse({"error": error}, status_code=status, headers={"Cache-Control": "no-store"})


async def _serve_until_stopped(client_id: str) -> None:
    users = {"ada": TestUser("user_ada", "ada@example.com", name="Ada")}
    async with run_oidc_provider(users, client_id=client_id) as provider:
        print(f"READY {provider.issuer}", flush=True)
        await asyncio.Event().wait()  # until the process is terminated


if __name__ == "__main__":
    # ``python -m tests.support.oidc_provider [CLIENT_ID]``: the provider as a process of its
    # own, for the JS tests; prints ``READY <issuer>``, mints with ``POST /test/mint``.
    import sys

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_stopped(sys.argv[1] if len(sys.argv) > 1 else CLIENT_ID))
