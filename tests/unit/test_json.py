"""``llmrelay._json``: orjson's results are exactly the standard library's (values, bytes, errors).

The product's JSON on the token path (upstream chunks parsed, SSE frames' strings encoded)
goes through ``orjson`` when installed; these tests compare it, and the frames of the
OpenAI chat encoder, with the standard-library fallback (``_json.py`` loaded a second
time with ``orjson`` hidden).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmrelay import _json
from llmrelay._wire import openai_chat
from llmrelay._wire.openai_chat import ChunkFrames
from llmrelay.types import FinishReason, Reasoning, Usage


@pytest.fixture(scope="module")
def stdlib() -> ModuleType:
    """``llmrelay._json`` as imported where orjson is not installed."""
    spec = importlib.util.spec_from_file_location("_json_without_orjson", _json.__file__)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("orjson")
    sys.modules["orjson"] = None  # type: ignore[assignment]  # import orjson -> ImportError
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is not None:
            sys.modules["orjson"] = saved
        else:
            del sys.modules["orjson"]
    assert module.FAST is False
    return module


def test_the_fast_path_is_orjson_here() -> None:
    # otherwise every comparison below compares the standard library with itself
    assert _json.FAST
    assert _json.string is not _json._std_string
    assert _json.loads is not _json._std_loads


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (1 != 1.0, -0.0 != 0.0, nan == nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


# -- strings ------------------------------------------------------------------------------

EVERY_CHARACTER = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


def test_every_character_is_encoded_as_the_standard_library_does(stdlib: ModuleType) -> None:
    assert _json.string(EVERY_CHARACTER) == stdlib.string(EVERY_CHARACTER)
    for c in [*range(0x00, 0x100), 0x2028, 0x2029, 0xFEFF, 0x1F600]:  # alone, too
        text = f'a{chr(c)}"\\'
        assert _json.string(text) == stdlib.string(text), hex(c)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " hello",
        "héllo wörld",
        "日本語のテキスト",
        "emoji 😀 and \U0001f9ea",
        'quote " backslash \\ slash /',
        "\b\f\n\r\t\x00\x1f\x7f",
        "line\u2028sep\u2029par\x85nel",
        "\u2028",
        "3.141592653589793 1e+16 18446744073709551616",
    ],
)
def test_strings_match_the_standard_library(stdlib: ModuleType, text: str) -> None:
    encoded = _json.string(text)
    assert encoded == stdlib.string(text)
    assert json.loads(encoded) == text
    assert b"\xe2\x80\xa8" not in encoded
    assert b"\xe2\x80\xa9" not in encoded
    assert b"\xc2\x85" not in encoded
    assert len(encoded.decode().splitlines()) <= 1


def test_a_lone_surrogate_raises_the_standard_librarys_error(stdlib: ModuleType) -> None:
    for module in (_json, stdlib):
        with pytest.raises(UnicodeEncodeError):
            module.string("half \ud83d of an emoji")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_encodes_as_the_standard_library_does(text: str) -> None:
    assert _json.string(text) == _json._std_string(text)


# -- parsing ------------------------------------------------------------------------------

DOCUMENTS = [
    '{"id":"chatcmpl-1","created":1733000000,"choices":[{"index":0,"delta":{"content":"hi"}}]}',
    '{"content":"héllo 日本 😀","escaped":"\\u00e9\\ud83d\\ude00\\u2028"}',
    "[0.1, 1e16, 1E+16, 1e-7, 5e-324, 1.7976931348623157e308, -0.0, 2.5, 1.0, 100]",
    "[1E400, -1e999]",  # orjson refuses what json reads as infinities
    "[NaN, Infinity, -Infinity]",
    "[9223372036854775807, -9223372036854775808, 18446744073709551615]",
    "[18446744073709551616, -9223372036854775809, 123456789012345678901234567890]",
    '{"usage":{"prompt_tokens":99999999999999999999999,"completion_tokens":1}}',
    '{"a":"1234567890123456789012 in a string"}',
    '"\\ud800 a lone escaped surrogate"',
    '{"a":1,"b":2,"a":3}',
    '  {"spaced" :\t[ 1 , 2 ]\n}  ',
    "[" * 200 + "]" * 200,
    "-0",
    "true",
    # long digit runs of floats (Gradio's durations) and of integers beside them
    '{"duration":8.619100117357448e-05,"average_duration":0.00027315000018764596}',
    "[true, 12345678901234567890.5, 1234567890123456789012e-5, 1234567890123456789012E5]",
    "[true, 0.1234567890123456789012345e-300, -0.000000000000000000000000001]",
    "[true, 0.5, 12345678901234567890123, 0.00000000000000000000001]",
    "[true, 0.00000000000000000000001, -12345678901234567890123]",
    "[true, 1e0000000000000000000005, 1.5e-0000000000000000000000007]",
    "12345678901234567890123",
    '{"a":"x.1234567890123456789012","b":1234567890123456789012}',
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_documents_parse_as_the_standard_library_parses_them(stdlib: ModuleType, text: str) -> None:
    expected = json.loads(text)
    for data in (text, text.encode()):
        assert _same(_json.loads(data), expected)
        assert _same(stdlib.loads(data), expected)
    if isinstance(expected, list) and expected and isinstance(expected[0], float):
        assert any(math.isinf(x) or math.isnan(x) or x == 0.1 for x in expected)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ('{"a": 1', json.JSONDecodeError),
        ("", json.JSONDecodeError),
        ("[1, 2,]", json.JSONDecodeError),
        (b'"\xff\xfe invalid UTF-8"', UnicodeDecodeError),
        ("\ufeff{}", json.JSONDecodeError),
        ("[" * 100_000 + "]" * 100_000, RecursionError),  # orjson refuses 1024: json's error
    ],
)
def test_malformed_documents_raise_the_standard_librarys_errors(
    stdlib: ModuleType, data: str | bytes, error: type[Exception]
) -> None:
    for module in (_json, stdlib):
        with pytest.raises(error):
            module.loads(data)


FLOAT_RUNS = [
    '{"msg":"process_generating","duration":8.619100117357448e-05,'
    '"average_duration":0.00027315000018764596,"success":true}',
    "[12345678901234567890.5, 1234567890123456789012e-5, 1234567890123456789012E5]",
    "[0.1234567890123456789012345e-300, -0.000000000000000000000000001]",
]
INTEGER_RUNS = [
    "[0.5, 12345678901234567890123, 0.00000000000000000000001]",
    "[0.00000000000000000000001, -12345678901234567890123]",
    "[1e0000000000000000000005]",
    "12345678901234567890123",
]


@pytest.mark.parametrize("text", FLOAT_RUNS)
def test_long_runs_of_a_floats_digits_stay_on_orjson(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a fraction's or a float's integer part's 19+ digits: orjson reads it exactly
    expected = json.loads(text)

    def refuse(data: str | bytes) -> Any:
        raise AssertionError("fell back to json.loads")

    monkeypatch.setattr(_json.json, "loads", refuse)
    for data in (text, text.encode()):
        assert _same(_json.loads(data), expected)


@pytest.mark.parametrize("text", INTEGER_RUNS)
def test_a_run_that_may_be_an_integer_goes_to_json_loads(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = json.loads(text)
    calls: list[Any] = []
    std = json.loads

    def counted(data: str | bytes) -> Any:
        calls.append(data)
        return std(data)

    monkeypatch.setattr(_json.json, "loads", counted)
    assert _same(_json.loads(text), expected)
    assert calls == [text]


_digits = st.text("0123456789", min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(_digits, _digits, st.integers(-340, 320) | st.none(), st.booleans())
def test_any_float_with_long_digit_runs_parses_exactly(
    whole: str, fraction: str, exponent: int | None, negative: bool
) -> None:
    number = f"{'-' if negative else ''}{whole.lstrip('0') or '0'}.{fraction}"
    if exponent is not None:
        number += f"e{exponent}"
    text = f'[{number}, {{"n": {number}}}]'
    assert _same(_json.loads(text), json.loads(text))


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_values, st.booleans())
def test_any_document_parses_as_the_standard_library_parses_it(value: Any, ascii: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii)
    assert _same(_json.loads(text), json.loads(text))
    assert _same(_json.loads(text.encode()), json.loads(text))


# -- loads_utf8: the bytes of an event's data, as loads(data.decode("utf-8", "replace")) ----


def _loads_utf8_expected(data: bytes) -> Any:
    return json.loads(data.decode("utf-8", "replace"))


UTF8_DOCUMENTS = [
    *(text.encode("utf-8", "surrogatepass") for text in DOCUMENTS),
    b'{"content":"\xff\xfe invalid UTF-8 in a string"}',  # parses, with U+FFFD
    b'{"content":"a cut \xe2\x80 sequence", "n": 12345678901234567890123}',
    b'{\x00"a\x00":1}',  # json.loads(bytes) would read it as UTF-16
    b'{"a": 1',
    b"",
    b"\xef\xbb\xbf{}",
    b"[" * 100_000 + b"]" * 100_000,
]


@pytest.mark.parametrize("data", UTF8_DOCUMENTS)
def test_loads_utf8_is_loads_of_the_decoded_text(stdlib: ModuleType, data: bytes) -> None:
    try:
        expected = _loads_utf8_expected(data)
    except (ValueError, RecursionError) as exc:
        for module in (_json, stdlib):
            with pytest.raises(type(exc)):
                module.loads_utf8(data)
        return
    assert _same(_json.loads_utf8(data), expected)
    assert _same(stdlib.loads_utf8(data), expected)


def test_loads_utf8_reads_valid_bytes_with_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = b'{"id":"chatcmpl-1","created":1733000000,"choices":[{"delta":{"content":"\xc3\xa9"}}]}'
    expected = json.loads(chunk)

    def refuse(data: str | bytes) -> Any:
        raise AssertionError("fell back to json.loads")

    monkeypatch.setattr(_json.json, "loads", refuse)
    assert _json.loads_utf8(chunk) == expected


@settings(max_examples=300, deadline=None)
@given(_values, st.booleans(), st.binary(max_size=3))
def test_any_utf8_document_parses_as_its_decoded_text(value: Any, ascii: bool, junk: bytes) -> None:
    data = json.dumps(value, ensure_ascii=ascii).encode("utf-8", "surrogatepass")
    for doc in (data, data[:-1] + junk + data[-1:] if len(data) > 1 else data):
        try:
            expected = _loads_utf8_expected(doc)
        except (ValueError, RecursionError) as exc:
            with pytest.raises(type(exc)):
                _json.loads_utf8(doc)
        else:
            assert _same(_json.loads_utf8(doc), expected)


# -- the frames of the OpenAI chat encoder, with and without orjson -----------------------


def _frames(texts: list[str], usage: Usage) -> list[bytes]:
    frames = ChunkFrames(
        id="chatcmpl-ünïcode-1", created=1733000000, model="local:mödel-😀", include_usage=True
    )
    out = [frames.text(text) for text in texts]
    out.append(frames.event(Reasoning("thinking\u2028 3.5e-7 ü")) or b"")
    assert frames.event(usage) is None
    out.append(frames.event(FinishReason("length")) or b"")
    out.append(frames.tail())
    return out


def test_chunk_frames_are_byte_identical_without_orjson(
    stdlib: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [
        "Hello",
        " wörld",
        " 日本語",
        " 😀",
        " 0.1 + 0.2 = 0.30000000000000004",
        " 1e+16 1E400 NaN",
        " 18446744073709551616",
        '"quoted" \\ \n\t\x00',
        "\u2028\u2029\x85",
        "",
    ]
    usage = Usage(2**70, 12345678901234567890, None)
    fast = _frames(texts, usage)
    monkeypatch.setattr(openai_chat, "json_string", stdlib.string)
    slow = _frames(texts, usage)
    assert fast == slow
    for frame in fast:
        assert frame.startswith(b"data: {")
        assert frame.endswith(b"}\n\n")
        assert frame.count(b"\n") == 2  # one line: U+2028/U+2029/U+0085 escaped
        json.loads(frame[len(b"data: ") :])
    chunk = json.loads(fast[6][len(b"data: ") :])
    assert chunk["choices"][0]["delta"]["content"] == " 18446744073709551616"
    assert chunk["model"] == "local:mödel-😀"
    assert json.loads(fast[-1][len(b"data: ") :])["usage"] == {
        "prompt_tokens": 2**70,
        "completion_tokens": 12345678901234567890,
        "total_tokens": 2**70 + 12345678901234567890,
    }
