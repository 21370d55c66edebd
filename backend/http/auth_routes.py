"""``/api/auth/*``: Better Auth's endpoints and shapes, over ``AuthService``.

A session travels as ``Authorization: Bearer <token>`` or as the HttpOnly session cookie set
by the sign-in answers. Requests that change state and ride on the cookie must come from this
site or a trusted origin (CSRF); so must the sign-in forms themselves (login CSRF).

Two more cookies, both HttpOnly and SameSite=Lax, neither of them a credential on its own:

- the device cookie (``stepup.device``, path ``/api/auth``, a year), set by every successful
  sign-in: it makes this browser a known device of the account (``backend/auth/devices.py``);
- the OAuth state cookie (``stepup.oauth_state``, path ``/api/auth/callback``, ten minutes),
  set by ``/sign-in/social`` and required by the callback: an OAuth sign-in finishes only in
  the browser that began it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from backend.auth.devices import COOKIE_PATH as DEVICE_COOKIE_PATH
from backend.auth.devices import DEVICE_TTL, Device
from backend.auth.jwt import KeyRing
from backend.auth.service import AuthService, SignedIn, Unverified
from backend.auth.sessions import session_json, user_json
from backend.auth.timestamps import iso
from backend.errors import ConvexError, ErrorCode
from backend.http.bodies import read_json
from backend.http.errors import error_response, refused
from backend.mail import dev_outbox
from backend.sensitive.account import confirm_email_change
from backend.udf.context import ClientInfo, Identity

MAX_AUTH_BODY = 64 * 1024
T = TypeVar("T")
OAUTH_STATE_PATH = "/api/auth/callback"
Handler = Callable[[Request], Awaitable[Response]]


class StepUpRequired(Exception):
    """A protected account change was refused for want of a step-up: answered with all of
    the refusal's data (action, level, description, methods), as the socket answers it."""

    def __init__(self, error: ConvexError) -> None:
        super().__init__(str(error))
        self.error = error


class AuthRoutes:
    def __init__(
        self,
        service: AuthService,
        keyring: KeyRing,
        *,
        dev_mode: bool,
    ) -> None:
        self.service = service
        self.keyring = keyring
        self.dev_mode = dev_mode
        base = urlsplit(service.config.base_url)
        self.secure = base.scheme == "https"
        prefix = "__Secure-" if self.secure else ""
        self.cookie_name = prefix + "stepup.session_token"
        self.device_cookie = prefix + "stepup.device"
        self.state_cookie = prefix + "stepup.oauth_state"
        self.origins = {f"{base.scheme}://{base.netloc}", *service.config.trusted_origins}

    # ---- plumbing -----------------------------------------------------------------------

    def _client(self, request: Request) -> ClientInfo:
        return ClientInfo(
            ip_address=request.client.host if request.client else None,
            user_agent=request.headers.get("user-agent"),
        )

    def _token(self, request: Request) -> tuple[str | None, bool]:
        """The session token and whether it came from the cookie."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip(), False
        cookie = request.cookies.get(self.cookie_name)
        return (cookie, True) if cookie else (None, False)

    def _check_origin(self, request: Request, *, required: bool) -> None:
        origin = request.headers.get("origin")
        if origin is None:
            referer = request.headers.get("referer")
            if referer:
                parts = urlsplit(referer)
                origin = f"{parts.scheme}://{parts.netloc}"
        if origin is None and not required:
            return
        if origin in self.origins:
            return
        # Same origin as the request itself (the site reached as localhost or by IP, say).
        host = request.headers.get("host")
        if origin is not None and host and urlsplit(origin).netloc == host:
            return
        raise ConvexError(ErrorCode.INVALID_ORIGIN, "This request must come from this site")

    async def _body(self, request: Request) -> dict[str, Any]:
        body = await read_json(request, MAX_AUTH_BODY)
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise ConvexError(ErrorCode.INVALID_ARGUMENT, "The body must be a JSON object")
        return body

    def _device(self, request: Request) -> str | None:
        return request.cookies.get(self.device_cookie)

    def _set_cookie(self, response: Response, signed_in: SignedIn) -> None:
        max_age = int(self.service.config.session_ttl.total_seconds())
        response.set_cookie(
            self.cookie_name,
            signed_in.token,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )
        if signed_in.device is not None:
            self._set_device_cookie(response, signed_in.device)

    def _set_device_cookie(self, response: Response, device: Device) -> None:
        response.set_cookie(
            self.device_cookie,
            device.cookie,
            max_age=int(DEVICE_TTL.total_seconds()),
            path=DEVICE_COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )

    def _signed_in(self, signed_in: SignedIn, **extra: Any) -> Response:
        response = JSONResponse(
            {**extra, "token": signed_in.token, "user": user_json(signed_in.user)}
        )
        self._set_cookie(response, signed_in)
        return response

    @staticmethod
    def guarded(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except StepUpRequired as required:  # the whole refusal: the dialog needs it
                data = required.error.data
                return JSONResponse(
                    data, status_code=ErrorCode.SENSITIVE_VERIFICATION_REQUIRED.status
                )
            except ConvexError as error:
                return error_response(error)

        return run

    # ---- endpoints ----------------------------------------------------------------------

    async def sign_up(self, request: Request) -> Response:
        self._check_origin(request, required=False)
        body = await self._body(request)
        created = await self.service.sign_up(
            body.get("email"),
            body.get("password"),
            body.get("name"),
            self._client(request),
            callback_url=body.get("callbackURL"),
            device_cookie=self._device(request),
        )
        if isinstance(created, Unverified):  # Better Auth: no session until the address is proven
            return JSONResponse({"token": None, "user": user_json(created.user)})
        return self._signed_in(created)

    async def sign_in(self, request: Request) -> Response:
        self._check_origin(request, required=False)
        body = await self._body(request)
        signed_in = await self.service.sign_in(
            body.get("email"),
            body.get("password"),
            self._client(request),
            callback_url=body.get("callbackURL"),
            device_cookie=self._device(request),
        )
        return self._signed_in(signed_in, redirect=False)

    async def magic_link(self, request: Request) -> Response:
        self._check_origin(request, required=False)
        body = await self._body(request)
        await self.service.request_magic_link(
            body.get("email"),
            body.get("callbackURL"),
            self._client(request),
            device_cookie=self._device(request),
        )
        return JSONResponse({"status": True})

    async def _follow(
        self, request: Request, follow: Callable[..., Awaitable[T]]
    ) -> tuple[str | None, T | Response]:
        """Follow a mailed link: its ``callbackURL`` (checked), and what ``follow(token,
        client, device_cookie=...)`` gave, or, for a dead link with a destination, the
        redirect there with the reason: a person lands on the site, not on JSON. A client
        that calls without a destination gets the error as JSON."""
        callback = self.service.check_callback(request.query_params.get("callbackURL"))
        try:
            followed = await follow(
                request.query_params.get("token"),
                self._client(request),
                device_cookie=self._device(request),
            )
        except ConvexError as error:
            if not callback:
                raise
            separator = "&" if "?" in callback else "?"
            dead = f"{callback}{separator}error={error.code}"
            return callback, RedirectResponse(dead, status_code=302)
        return callback, followed

    async def magic_link_verify(self, request: Request) -> Response:
        callback, signed_in = await self._follow(request, self.service.verify_magic_link)
        if isinstance(signed_in, Response):
            return signed_in
        if callback:
            response: Response = RedirectResponse(callback, status_code=302)
            self._set_cookie(response, signed_in)
            return response
        return self._signed_in(signed_in, session=session_json(signed_in.session))

    async def send_verification_email(self, request: Request) -> Response:
        token, from_cookie = self._token(request)
        self._check_origin(request, required=from_cookie)
        body = await self._body(request)
        await self.service.send_verification_email(
            body.get("email"),
            body.get("callbackURL"),
            self._client(request),
            session_token=token,
            device_cookie=self._device(request),
        )
        return JSONResponse({"status": True})

    async def verify_email(self, request: Request) -> Response:
        callback, verified = await self._follow(request, self.service.verify_email)
        if isinstance(verified, Response):
            return verified
        signed_in = verified.signed_in
        if callback:
            response: Response = RedirectResponse(callback, status_code=302)
        else:
            body: dict[str, Any] = {
                "status": True,
                "user": user_json(verified.user) if verified.user is not None else None,
            }
            if signed_in is not None:
                body["token"] = signed_in.token
            response = JSONResponse(body)
        if signed_in is not None:
            self._set_cookie(response, signed_in)
        return response

    async def social(self, request: Request) -> Response:
        self._check_origin(request, required=False)
        body = await self._body(request)
        url, binding = await self.service.begin_oauth(body.get("provider"), body.get("callbackURL"))
        response = JSONResponse({"url": url, "redirect": True})
        response.set_cookie(
            self.state_cookie,
            binding,
            max_age=int(self.service.config.oauth_ttl.total_seconds()),
            path=OAUTH_STATE_PATH,
            httponly=True,
            samesite="lax",  # the provider's redirect back is a top-level GET: Lax sends it
            secure=self.secure,
        )
        return response

    async def callback(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        params = request.query_params
        if params.get("error"):
            raise ConvexError(ErrorCode.OAUTH_FAILED, "The provider refused the sign-in")
        signed_in = await self.service.finish_oauth(
            provider,
            params.get("code"),
            params.get("state"),
            self._client(request),
            state_cookie=request.cookies.get(self.state_cookie),
            device_cookie=self._device(request),
        )
        response: Response = RedirectResponse(signed_in.callback_url or "/", status_code=302)
        self._set_cookie(response, signed_in)
        response.delete_cookie(
            self.state_cookie,
            path=OAUTH_STATE_PATH,
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )
        return response

    async def get_session(self, request: Request) -> Response:
        token, _ = self._token(request)
        info = await self.service.session(token)
        body = (
            None
            if info is None
            else {"session": session_json(info.session), "user": user_json(info.user)}
        )
        return JSONResponse(body, headers={"cache-control": "no-store"})

    async def sign_out(self, request: Request) -> Response:
        token, from_cookie = self._token(request)
        if from_cookie:
            self._check_origin(request, required=True)
        await self.service.sign_out(token)  # a dead session: signed out all the same
        response = JSONResponse({"success": True})
        response.delete_cookie(
            self.cookie_name, path="/", httponly=True, samesite="lax", secure=self.secure
        )
        return response

    async def list_sessions(self, request: Request) -> Response:
        token, _ = self._token(request)
        found = await self.service.list_sessions(token)
        return JSONResponse([session_json(s) for s in found], headers={"cache-control": "no-store"})

    async def revoke_session(self, request: Request) -> Response:
        token, from_cookie = self._token(request)
        if from_cookie:
            self._check_origin(request, required=True)
        body = await self._body(request)
        revoked = await self.service.revoke_session(token, body.get("id"), body.get("token"))
        return JSONResponse({"status": revoked})

    async def revoke_other_sessions(self, request: Request) -> Response:
        token, from_cookie = self._token(request)
        if from_cookie:
            self._check_origin(request, required=True)
        await self.service.revoke_other_sessions(token)
        return JSONResponse({"status": True})

    async def _as_caller(self, request: Request, path: str, args: dict[str, Any]) -> Any:
        """Run the engine's mutation ``path`` as the session of this request; an answer
        ``{ok: false, code}`` becomes that code's refusal."""
        token, from_cookie = self._token(request)
        if from_cookie:
            self._check_origin(request, required=True)
        info = await self.service.require_session(token)
        identity = Identity(subject=info.user["_id"], session_id=info.session["_id"])
        try:
            result = await self.service.engine.run_mutation(
                path, args, identity, client=self._client(request)
            )
        except ConvexError as error:
            if error.code == ErrorCode.SENSITIVE_VERIFICATION_REQUIRED:
                raise StepUpRequired(error) from None
            raise
        answer = result.value
        if isinstance(answer, dict) and answer.get("ok") is False:
            details = {k: v for k, v in answer.items() if k not in ("ok", "code")}
            raise ConvexError(str(answer["code"]), str(answer["code"]), **details)
        return info

    async def change_password(self, request: Request) -> Response:
        """Better Auth's ``/change-password``: ``{newPassword, currentPassword,
        revokeOtherSessions?}`` → ``{token: null, user}``. A protected action: 403
        ``SENSITIVE_VERIFICATION_REQUIRED`` with the methods to verify with."""
        body = await self._body(request)
        for name in ("newPassword", "currentPassword"):
            if not isinstance(body.get(name), str):
                raise ConvexError(ErrorCode.INVALID_ARGUMENT, f"{name} is required", path=name)
        args: dict[str, Any] = {
            "currentPassword": body["currentPassword"],
            "newPassword": body["newPassword"],
            "revokeOtherSessions": body.get("revokeOtherSessions") is True,
        }
        info = await self._as_caller(request, "sensitive:changePassword", args)
        return JSONResponse({"token": None, "user": user_json(info.user)})

    async def change_email(self, request: Request) -> Response:
        """Better Auth's ``/change-email``: ``{newEmail, callbackURL?}`` → ``{status: true}``;
        a link goes to each address, and the change happens when both are followed."""
        body = await self._body(request)
        if not isinstance(body.get("newEmail"), str):
            raise ConvexError(ErrorCode.INVALID_EMAIL, "newEmail is required", path="newEmail")
        await self._as_caller(request, "sensitive:changeEmail", {"newEmail": body["newEmail"]})
        return JSONResponse({"status": True})

    async def change_email_verify(self, request: Request) -> Response:
        outcome = await confirm_email_change(self.service.engine, request.query_params.get("token"))
        return JSONResponse({"status": True, "changed": outcome == "changed"})

    async def convex_token(self, request: Request) -> Response:
        token, _ = self._token(request)
        info = await self.service.require_session(token)
        jwt = await self.keyring.mint(subject=info.user["_id"], session_id=info.session["_id"])
        return JSONResponse({"token": jwt}, headers={"cache-control": "no-store"})

    async def providers(self, _request: Request) -> Response:
        """The OAuth providers this server offers (ids for ``sign-in/social``)."""
        oauth = self.service.oauth
        ids = sorted(oauth.providers) if oauth is not None else []
        return JSONResponse({"providers": ids}, headers={"cache-control": "no-store"})

    async def jwks(self, _request: Request) -> Response:
        return JSONResponse(
            await self.keyring.jwks(), headers={"cache-control": "public, max-age=300"}
        )

    async def outbox(self, request: Request) -> Response:
        if not self.dev_mode:
            return refused(ErrorCode.NOT_FOUND, "Not Found")
        to = request.query_params.get("to")
        address = to.strip().lower() if to else None

        shown = await dev_outbox(self.service.engine, address)
        return JSONResponse(
            [{**m, "sentAt": iso(m["sentAt"]) if m["sentAt"] else None} for m in shown],
            headers={"cache-control": "no-store"},
        )

    def routes(self) -> list[Route]:
        g = self.guarded
        return [
            Route("/api/auth/sign-up/email", g(self.sign_up), methods=["POST"]),
            Route("/api/auth/sign-in/email", g(self.sign_in), methods=["POST"]),
            Route("/api/auth/sign-in/magic-link", g(self.magic_link), methods=["POST"]),
            Route("/api/auth/magic-link/verify", g(self.magic_link_verify), methods=["GET"]),
            Route(
                "/api/auth/send-verification-email",
                g(self.send_verification_email),
                methods=["POST"],
            ),
            Route("/api/auth/verify-email", g(self.verify_email), methods=["GET"]),
            Route("/api/auth/sign-in/social", g(self.social), methods=["POST"]),
            Route("/api/auth/callback/{provider:str}", g(self.callback), methods=["GET"]),
            Route("/api/auth/get-session", g(self.get_session), methods=["GET"]),
            Route("/api/auth/sign-out", g(self.sign_out), methods=["POST"]),
            Route("/api/auth/list-sessions", g(self.list_sessions), methods=["GET"]),
            Route("/api/auth/revoke-session", g(self.revoke_session), methods=["POST"]),
            Route(
                "/api/auth/revoke-other-sessions", g(self.revoke_other_sessions), methods=["POST"]
            ),
            Route("/api/auth/change-password", g(self.change_password), methods=["POST"]),
            Route("/api/auth/change-email", g(self.change_email), methods=["POST"]),
            Route("/api/auth/change-email/verify", g(self.change_email_verify), methods=["GET"]),
            Route("/api/auth/convex/token", g(self.convex_token), methods=["GET"]),
            Route("/api/auth/jwks", g(self.jwks), methods=["GET"]),
            Route("/api/auth/providers", g(self.providers), methods=["GET"]),
            Route("/api/dev/outbox", g(self.outbox), methods=["GET"]),
        ]
