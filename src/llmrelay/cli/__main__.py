"""``python -m llmrelay.cli``: the same as the ``llmrelay`` command."""

from llmrelay.cli import main

main()
