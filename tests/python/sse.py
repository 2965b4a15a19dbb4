"""A strict reader for the gateway's server-sent events, shared by the raw streaming tests.

The gateway frames every event as ``data: <compact JSON>\\n\\n`` with no ``event:`` or ``id:`` lines,
as MLflow 3.17.2 frames them; ``/v1/*`` streams add a final ``data: [DONE]``. This parser checks
that framing rather than tolerating variations, so a framing regression fails loudly.
"""

from __future__ import annotations

import json

DONE = "[DONE]"


def parse_events(body: str) -> list[object]:
    """Decodes a complete SSE body into its events: JSON values, or the string ``"[DONE]"``."""
    assert body.endswith("\n\n"), f"stream does not end with a blank line: {body[-80:]!r}"
    events: list[object] = []
    for block in body[:-2].split("\n\n"):
        assert block.startswith("data: "), f"unexpected SSE block {block!r}"
        assert "\n" not in block, f"multi-line SSE block {block!r}"
        payload = block[len("data: "):]
        events.append(DONE if payload == DONE else json.loads(payload))
    return events
