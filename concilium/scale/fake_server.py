"""A tiny OpenAI-compatible model server for tests and benchmarks (never the network).

It answers ``What is N plus one?`` with ``Answer: N+1`` after ``--delay`` seconds,
like a model server under load, and appends one line per request to ``--log`` as
the request arrives (so a test can wait for "an item is in flight").

Example:
    python -m concilium.scale.fake_server --port 0 --delay 0.1   # prints the port
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "reply_for"]


def reply_for(text: str) -> str:
    found = re.search(r"What is (\d+) plus one", text)
    return f"Answer: {int(found.group(1)) + 1}" if found else "Answer: 0"


async def serve(port: int, delay_s: float, log: Path | None) -> None:
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        text = str(body.get("messages", [{}])[-1].get("content", ""))
        if log is not None:
            with log.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"at": time.time(), "text": text[-80:]}) + "\n")
        await asyncio.sleep(delay_s)
        answer = reply_for(text)
        return web.json_response({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": len(text.split()), "completion_tokens": 3,
                      "total_tokens": len(text.split()) + 3},
        })

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(bound, flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.delay, args.log))


if __name__ == "__main__":
    main()
