"""Wire-level fake of the Hugging Face Hub's Space API (host lookup and runtime stage).

Ground truth (from the official clients: ``@gradio/client``
``client/js/src/helpers/spaces.ts``, ``huggingface_hub`` ``HfApi.space_info``)::

    GET /api/spaces/{owner}/{name}
        -> 200 {"id", "author", "private", "sdk": "gradio", "subdomain", "host",
                "runtime": {"stage", "hardware": {...}, ...}}
        -> 401 {"error": "Invalid credentials in Authorization header"}  (bad token)
        -> 404 {"error": "Repository not found"}  (unknown, or private without its token)

A ``HubSpace`` scripts one Space: its ``host`` (the fake Gradio app's URL), whether it is
``private`` (then only ``token`` sees it), and its ``stages``: each lookup takes the next
one, the last repeating. ``"SLEEPING"``/``"STOPPED"`` stay until ``woken()`` says a request
reached the Space, then ``after_wake`` follows (the Hub reports the Space starting).
``raw_body`` (hostile-Hub tests) is sent instead of the answer, as ``application/json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["FakeHub", "HubSpace"]


@dataclass
class HubSpace:
    """One scripted Space; see the module docstring."""

    host: str | None
    stages: list[str] = field(default_factory=lambda: ["RUNNING"])
    private: bool = False
    token: str | None = None
    subdomain: str | None = None
    woken: Callable[[], bool] | None = None
    after_wake: str = "RUNNING"
    lookups: int = 0
    raw_body: bytes | None = None


class FakeHub:
    """The fake Hub. ``spaces`` maps ``owner/name`` to its script; ``requests`` records
    ``(path, authorization header or None)`` of every request."""

    def __init__(self) -> None:
        self.spaces: dict[str, HubSpace] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.app = Starlette(
            routes=[Route("/api/spaces/{owner}/{name}", self._space, methods=["GET"])]
        )

    def _stage(self, space: HubSpace) -> str:
        stage = space.stages[min(space.lookups, len(space.stages) - 1)]
        space.lookups += 1
        if stage in ("SLEEPING", "STOPPED") and space.woken is not None and space.woken():
            return space.after_wake
        return stage

    async def _space(self, request: Request) -> Response:
        authorization = request.headers.get("authorization")
        self.requests.append((request.url.path, authorization))
        space_id = f"{request.path_params['owner']}/{request.path_params['name']}"
        space = self.spaces.get(space_id)
        if (
            authorization is not None
            and space is not None
            and space.token is not None
            and authorization != f"Bearer {space.token}"
        ):
            return JSONResponse({"error": "Invalid credentials in Authorization header"}, 401)
        if space is None or (space.private and authorization != f"Bearer {space.token}"):
            return JSONResponse({"error": "Repository not found"}, 404)
        if space.raw_body is not None:
            return Response(space.raw_body, 200, media_type="application/json")
        owner, _, name = space_id.partition("/")
        subdomain = space.subdomain or f"{owner}-{name}".lower().replace("_", "-")
        body: dict[str, Any] = {
            "_id": "6667e801fd95ddf66cac84ff",
            "id": space_id,
            "author": owner,
            "private": space.private,
            "sdk": "gradio",
            "subdomain": subdomain,
            "runtime": {"stage": self._stage(space), "hardware": {"current": "cpu-basic"}},
        }
        if space.host is not None:
            body["host"] = space.host
        return JSONResponse(body)
