"""Wire shapes: llmrelay's events encoded as another API's objects and SSE frames.

One module per shape, each turning the one event stream (``llmrelay.types``) into that
shape — objects for the library's facade and SSE bytes for ``llmrelay serve``:

* ``openai_chat``: OpenAI chat completions (``ChatCompletion``, ``chat.completion.chunk``
  objects and their ``data: {...}`` frames, ``data: [DONE]``).

``sse`` holds what every shape's streaming shares: JSON strings for frames, the
``SSEEncoder`` protocol a shape's frame encoder implements, and ``AsyncSSEStream``, a
turn's events as that shape's frames (what the server sends). An encoder skips any event
type it has no shape for (``None``), so new event types never break an older shape.
"""
