"""``llmrelay image``: generate one image and write it to a file (or stdout with ``-o -``).

Uses only the public API (``llmrelay.AsyncClient().images.generate``); writing the file
is the command's job, never the library's.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

import llmrelay

from ._common import fail, make_client_kwargs

__all__ = ["image"]

_SIZE = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")


def _size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _SIZE.match(value):
        raise click.BadParameter("use WIDTHxHEIGHT in pixels, e.g. 1024x768")
    return value


@click.command()
@click.argument("prompt")
@click.option("-m", "--model", required=True, help="Image model: provider:model.")
@click.option(
    "-o",
    "--output",
    required=True,
    help="File to write the image to ('-' for standard output).",
)
@click.option("--size", callback=_size, help="WIDTHxHEIGHT in pixels, e.g. 1024x768.")
@click.option("--seed", type=click.IntRange(min=0), help="Random seed.")
@click.option("--proxy", help="http://, https:// or socks5:// proxy URL.")
@click.option("--timeout", type=click.FloatRange(min=0.001), help="Read (idle) timeout, seconds.")
def image(
    prompt: str,
    model: str,
    output: str,
    size: str | None,
    seed: int | None,
    proxy: str | None,
    timeout: float | None,
) -> None:
    """Generate an image for PROMPT with MODEL and write it to OUTPUT.

    The file is written only when the image arrived whole (through a temporary file
    in the same directory); a line on stderr says where and how many bytes.
    """
    if not prompt.strip():
        raise click.UsageError("the prompt is empty")
    import asyncio  # not at module level: `llmrelay --help` does not need it

    kwargs = make_client_kwargs(proxy=proxy, timeout=timeout)
    try:
        data = asyncio.run(_generate(kwargs, model=model, prompt=prompt, size=size, seed=seed))
    except KeyboardInterrupt:
        click.echo("\nllmrelay: interrupted", err=True)
        sys.exit(130)
    except llmrelay.ConfigError as exc:
        fail(str(exc), code=2)
    except llmrelay.LLMRelayError as exc:
        fail(str(exc), code=1)
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        _write(Path(output), data)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}", code=1)
    click.echo(f"llmrelay: wrote {len(data)} bytes to {output}", err=True)


async def _generate(
    client_kwargs: dict[str, Any], *, model: str, prompt: str, size: str | None, seed: int | None
) -> bytes:
    async with llmrelay.AsyncClient(**client_kwargs) as client:
        response = await client.images.generate(
            model=model, prompt=prompt, n=1, size=size, seed=seed, response_format="b64_json"
        )
    if not response.data or not response.data[0].b64_json:
        raise llmrelay.ProtocolError("the answer holds no image", provider=model)
    try:
        return base64.b64decode(response.data[0].b64_json, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise llmrelay.ProtocolError(f"undecodable image data: {exc}", provider=model) from exc


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
