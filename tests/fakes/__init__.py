"""Fake servers for the test-suite (see gradio_space.py, _server.py)."""
