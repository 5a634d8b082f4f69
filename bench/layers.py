"""Server CPU per layer, from a py-spy profile of ``courier serve`` under load.

``courier bench e2e --profile`` records the server with py-spy (``--format raw``:
one folded stack and its sample count per line) while the messages flow; each sample
is charged to the first layer whose marker appears in its stack, innermost first.
"""

from __future__ import annotations

from pathlib import Path

# (layer, markers): a stack containing a marker belongs to that layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("garbage collector", ("gc_collect",)),
    (
        "presence, drain, heartbeats",
        (
            "drain (api/drain.py",
            "refresh (api/node.py",
            "_ping (api/frames.py",
        ),
    ),
    (
        "ack: read frame, parse, ack_many",
        (
            "AckBatcher",
            "AckReader",
            "dispatch (api/frames.py",
            "ack (api/frames.py",
            "plan (api/inbound.py",
            "_read (api/ws.py",
            "WebSocketsSansIOProtocol.data_received",
            "Inbox.",
        ),
    ),
    (
        "transport + socket send",
        (
            "RedisTransport.push",
            "_writer (api/ws.py",
            "Flusher.flush",
            "local_sink (api/hub.py",
        ),
    ),
    (
        "dispatch: XREADGROUP, dispatch_many",
        ("Worker.process_one", "Worker.process_next", "Worker.handle"),
    ),
    ("connection set-up", ("websocket_endpoint", "WebSocketsSansIOProtocol.handle_connect")),
    ("Redis socket writes (all layers)", ("_send_packed_command",)),
]
OTHER = "event loop (uvloop) and the rest"


def shares(path: Path) -> dict[str, float]:
    """Fraction of the samples per layer."""
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        layer = next((name for name, marks in LAYERS if any(m in stack for m in marks)), OTHER)
        counts[layer] = counts.get(layer, 0) + int(n)
    return {k: v / total for k, v in sorted(counts.items(), key=lambda kv: -kv[1])} if total else {}


def per_message(path: Path, server_cpu_s: float, messages: int) -> dict[str, float]:
    """Server CPU microseconds per delivered message, per layer."""
    per = server_cpu_s * 1e6 / max(messages, 1)
    return {k: round(per * f, 1) for k, f in shares(path).items()}
