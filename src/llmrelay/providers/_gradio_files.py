"""Files for a Gradio Space: the upload route and ``FileData``, as gradio_client sends them.

Public source: ``client/python/gradio_client/client.py`` (``Endpoint._upload_file``) and
``utils.py`` (``handle_file``, ``UPLOAD_URL``) in https://github.com/gradio-app/gradio,
and the server's route (``gradio/routes.py`` ``upload_file``)::

    POST {space}{prefix}/upload            multipart/form-data, one part per file,
                                           field name "files" (filename = original name)
    200 application/json                   ["<server path of each file>", ...]

``prefix`` is ``""`` for Gradio 4 and ``"/gradio_api"`` from 5 on. A file then goes in
the data as ``FileData``: ``{"path": <server path>, "orig_name": <name>, "meta":
{"_type": "gradio.FileData"}}`` (the server checks that the path is in its upload
folder). An ``http(s)`` URL goes as ``{"path": <url>, "orig_name": <last segment>,
"meta": ...}``, not uploaded: Gradio 4.x and later download it themselves when they
preprocess the input (``processing_utils`` ``move_files_to_cache``; SSRF-protected from
Gradio 5 on).
"""

from __future__ import annotations

from typing import Any

import httpx

from .._http import protocol_error, raise_for_status, read_json
from ._image_input import ImageData

__all__ = ["FILE_META", "file_data", "upload", "upload_url", "url_file_data"]

FILE_META = {"_type": "gradio.FileData"}
"""``FileData.meta``: how Gradio (``client_utils.is_file_obj_with_meta``) tells a file."""
_MAX_PATH = 4096


def file_data(path: str, name: str) -> dict[str, Any]:
    """The ``FileData`` of an uploaded file (as gradio_client's ``_upload_file``)."""
    return {"path": path, "orig_name": name, "meta": dict(FILE_META)}


def url_file_data(url: str) -> dict[str, Any]:
    """The ``FileData`` of a file the Space downloads itself (``handle_file(url)``)."""
    name = url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return {"path": url, "orig_name": name[:200] or "image", "meta": dict(FILE_META)}


async def upload(
    http: httpx.AsyncClient,
    url: str,
    image: ImageData,
    *,
    headers: dict[str, str],
    provider: str,
    model: str,
) -> str:
    """``POST {url}`` (the Space's upload route) with ``image``; its server path.

    Raises:
        llmrelay.errors.ProviderError: HTTP errors, mapped (a file over the Space's
            ``max_file_size`` is its 413); ``ProtocolError`` for an answer that is not
            a list of one path.
    """
    files = [("files", (image.name, image.data, image.mime_type))]
    async with http.stream("POST", url, files=files, headers=headers) as response:
        await raise_for_status(response, provider=provider, model=model, what="upload")
        answer = await read_json(response, provider=provider, model=model, what="upload")
    if (
        not isinstance(answer, list)
        or len(answer) != 1
        or not isinstance(answer[0], str)
        or not 0 < len(answer[0]) <= _MAX_PATH
    ):
        raise protocol_error(
            "the upload answer is not a list of one file path",
            answer,
            provider=provider,
            model=model,
        )
    path: str = answer[0]
    return path


def upload_url(space: str, prefix: str) -> str:
    """The upload route of the Space at ``space`` (``prefix`` validated by discovery)."""
    return f"{space}{prefix}/upload"
