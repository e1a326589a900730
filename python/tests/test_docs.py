"""The Python blocks of docs/python.md compile, and every name they take from plexus exists."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import plexus
from plexus.node import Node
from plexus.pubsub import Publisher, Sample, Subscriber
from plexus.queue import QueueClient, QueueMessage, QueueServer
from plexus.rpc import Client

DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"
BLOCKS = re.findall(r"^```python\n([\s\S]*?)^```$", DOC.read_text(encoding="utf-8"), re.M)
# the methods a block may call on what plexus returns
METHODS = {name for cls in (Node, Publisher, Subscriber, Sample, Client, QueueServer, QueueClient, QueueMessage) for name in dir(cls) if not name.startswith("_")}


def test_the_page_has_python_examples() -> None:
    assert len(BLOCKS) >= 4


def test_every_block_compiles_and_uses_names_that_exist() -> None:
    for i, block in enumerate(BLOCKS):
        tree = ast.parse(block, f"docs/python.md block {i + 1}")
        compile(tree, f"docs/python.md block {i + 1}", "exec")
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "plexus":
                assert hasattr(plexus, n.attr), f"block {i + 1}: plexus.{n.attr} does not exist"
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute) and getattr(n.value.value, "id", None) == "plexus":
                module = importlib.import_module(f"plexus.{n.value.attr}")
                assert hasattr(module, n.attr), f"block {i + 1}: plexus.{n.value.attr}.{n.attr} does not exist"
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name):
                if n.func.value.id in ("node", "pub", "sub", "client", "sample", "qs", "qc", "msg"):
                    assert n.func.attr in METHODS, f"block {i + 1}: {n.func.value.id}.{n.func.attr}() does not exist"
