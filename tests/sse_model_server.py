"""An OpenAI-compatible model server that streams its reply as SSE chunks (for tests).

Every request gets the same reply (``--reply``), cut into word-sized pieces. With
``"stream": true`` each piece is its own ``chat.completion.chunk``, then, when
``stream_options.include_usage`` asks, a last chunk with no choices and the usage,
then ``data: [DONE]``; without it, one ``chat.completion``. Usage is the same either
way: the prompt's words, the reply's pieces. With ``--gate PATH`` a stream stops after
its first piece until PATH exists, so a test can see the first piece arrive while the
rest is provably not yet sent.

Example:
    python tests/sse_model_server.py --reply "Answer: 42"   # prints the port
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any


def pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def usage(body: dict[str, Any], reply: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    completion = len(pieces(reply))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def serve(port: int, reply: str, gate: Path | None) -> None:
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        body: dict[str, Any] = await request.json()
        base = {
            "id": "chatcmpl-sse",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
        }
        if not body.get("stream"):
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": reply},
                        }
                    ],
                    "usage": usage(body, reply),
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(data: dict[str, Any]) -> None:
            await response.write(f"data: {json.dumps(data)}\n\n".encode())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        await send(chunk({"role": "assistant", "content": ""}))
        for index, piece in enumerate(pieces(reply)):
            await send(chunk({"content": piece}))
            if index == 0 and gate is not None:
                while not gate.exists():  # the test holds the rest back
                    await asyncio.sleep(0.01)
        await send(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            await send(
                {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": usage(body, reply),
                }
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply", default="Answer: 42")
    parser.add_argument("--gate", type=Path, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.reply, args.gate))


if __name__ == "__main__":
    main()
