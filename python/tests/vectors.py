"""Shared by the tests: the test vectors of docs/protocol.md, read as the TypeScript tests read them."""
from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def read_vectors(text: str) -> dict[str, bytes]:
    """Every ```hex <label> block of the page, by label (a malformed block fails)."""
    out: dict[str, bytes] = {}
    opened = sum(1 for line in text.split("\n") if re.match(r"^```hex\b", line))
    for m in re.finditer(r"^```hex[ \t]+(\S+)[ \t]*\n([\s\S]*?)^```[ \t]*$", text, re.M):
        label, block = m.group(1), m.group(2)
        assert label not in out, f"vector {label} appears twice"
        lines = [line for line in block.split("\n") if line.strip()]
        data = bytearray()
        for i, line in enumerate(lines):
            tokens = line.split()
            assert all(re.fullmatch(r"[0-9a-f]{2}", t) for t in tokens), f"vector {label}: not lowercase hex"
            assert len(tokens) <= 16 if i == len(lines) - 1 else len(tokens) == 16, f"vector {label}: 16 bytes a line"
            data += bytes(int(t, 16) for t in tokens)
        out[label] = bytes(data)
    assert len(out) == opened, "every ```hex block has a label and its closing fence"
    return out


VECTORS = read_vectors(DOC.read_text(encoding="utf-8"))
