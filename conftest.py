"""Collection rules for the whole repository (tests/conftest.py holds the fixtures)."""

import importlib.util

# llm_backend's docstring examples build transformers: without the llm extra there is nothing they could run.
collect_ignore_glob = [] if importlib.util.find_spec("transformers") else ["llm_backend/*.py"]
