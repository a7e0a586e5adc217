"""A stand-in for the deployed app's public endpoint, for subscription tests: answers Business Central's
validation handshake on any path (or refuses it, when told to) and records which paths were validated."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


class HandshakeReceiver:
    def __init__(self) -> None:
        self.refuse = False
        self.handshakes: list[str] = []  # request paths, one per handshake answered or refused
        self.app = Starlette(routes=[Route("/{path:path}", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is None:
            return Response(status_code=202)
        self.handshakes.append(request.url.path)
        if self.refuse:
            return PlainTextResponse("no", status_code=403)
        return PlainTextResponse(token)
