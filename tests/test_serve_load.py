"""Many clients at once: 64 concurrent chat requests to a team on a 0.3 s model all
succeed, and ``/health`` keeps answering quickly meanwhile (runs never block the loop)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable

import httpx
import openai
import pytest

pytest.register_assert_rewrite("serve_fixtures")
from serve_fixtures import TASK, Server, write_teams  # noqa: E402

pytest_plugins = ["serve_fixtures"]

CONCURRENCY = 64


@pytest.fixture(scope="module")
def loaded(serve: Callable[..., Server], tmp_path_factory: pytest.TempPathFactory) -> Server:
    root = tmp_path_factory.mktemp("load")
    teams = write_teams(root / "teams", root / "scripts",
                        teams={"slow": {"name": "slow-single", "strategy": "single",
                                        "model": "scripted/point3",
                                        "roles": {"generator": {}}}},
                        script_overrides={"point3": {"latency_s": 0.3,
                                                     "default": "Answer: 411"}})
    return serve(teams=teams, env={"CONCILIUM_SCRIPTS_DIR": str(root / "scripts")})


async def test_64_concurrent_chats_while_health_stays_fast(loaded: Server) -> None:
    client = openai.AsyncOpenAI(base_url=f"{loaded.url}/v1", api_key="unused",
                                max_retries=0, timeout=300,
                                http_client=httpx.AsyncClient(
                                    limits=httpx.Limits(max_connections=CONCURRENCY + 8)))
    health: list[float] = []
    done = threading.Event()

    def probe() -> None:  # its own thread: the clients' event loop must not delay it
        with httpx.Client(base_url=loaded.url) as prober:
            prober.get("/health")  # connect first: only the answer time is measured
            while not done.wait(0.02):
                began = time.perf_counter()
                response = prober.get("/health")
                health.append(time.perf_counter() - began)
                assert response.status_code == 200

    async def chat(i: int) -> str | None:
        reply = await client.chat.completions.create(
            model="slow-single", seed=i, messages=[{"role": "user", "content": TASK}])
        return reply.choices[0].message.content

    prober = threading.Thread(target=probe)
    prober.start()
    began = time.perf_counter()
    answers = await asyncio.gather(*(chat(i) for i in range(CONCURRENCY)))
    wall = time.perf_counter() - began
    done.set()
    prober.join(10)
    assert answers == ["411"] * CONCURRENCY
    # The model calls overlap (64 x 0.3 s one after another would be 19 s).
    assert wall < 0.3 * CONCURRENCY / 2, wall
    assert len(health) >= 5
    p50 = statistics.median(health)
    p99 = sorted(health)[min(len(health) - 1, int(0.99 * len(health)))]
    print(f"\n64 chats in {wall:.2f} s; /health p50 {p50 * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, max {max(health) * 1000:.1f} ms over {len(health)} probes")
    assert p50 < 0.05, health
