"""``python -m llmrelay``: the same as the ``llmrelay`` command."""

from llmrelay.cli import main

main()
