"""``concilium serve`` security: the API key, loopback-only without one, the body limit,
and no secret in any response, event or error."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import httpx
import openai
import pytest

pytest.register_assert_rewrite("serve_fixtures")
from serve_fixtures import REPO, TASK, Server  # noqa: E402

from concilium.serve.app import is_loopback  # noqa: E402

pytest_plugins = ["serve_fixtures"]

KEY = "test-serve-key-0123456789"
OTHER_SECRET = "hunter2-very-secret-value"


@pytest.fixture(scope="module")
def keyed(serve: Callable[..., Server]) -> Server:
    return serve(key=KEY, args=("--max-body", "4096"),
                 env={"MY_SERVICE_TOKEN": OTHER_SECRET})


def test_every_endpoint_but_health_wants_the_key(keyed: Server) -> None:
    assert httpx.get(f"{keyed.url}/health").status_code == 200
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
                         ("GET", "/runs"), ("POST", "/runs"), ("GET", "/runs/x"),
                         ("GET", "/runs/x/events"), ("POST", "/runs/x/cancel"),
                         ("POST", "/runs/x/resume"), ("GET", "/teams"),
                         ("GET", "/teams/arith"), ("GET", "/openapi.json")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY},
                        {"Authorization": f"Basic {KEY}"}):
            response = httpx.request(method, keyed.url + path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers)
            error = response.json()["error"]
            assert error["type"] == "authentication_error"
            assert error["code"] == "invalid_api_key"
            assert KEY not in response.text
    ok = httpx.get(f"{keyed.url}/v1/models", headers=keyed.headers())
    assert ok.status_code == 200


def test_openai_sdk_with_and_without_the_key(keyed: Server) -> None:
    wrong = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    right = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=KEY, max_retries=0)
    reply = right.chat.completions.create(model="arith",
                                          messages=[{"role": "user", "content": TASK}])
    assert reply.choices[0].message.content == "411"


def test_body_limit_is_413_with_or_without_content_length(keyed: Server) -> None:
    big = b'{"model": "arith", "messages": [{"role": "user", "content": "' + b"x" * 8000 + b'"}]}'
    response = httpx.post(f"{keyed.url}/v1/chat/completions", content=big,
                          headers={**keyed.headers(), "content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit counts what arrives
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    response = httpx.post(f"{keyed.url}/v1/chat/completions", content=chunks(),
                          headers={**keyed.headers(), "content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_no_secret_in_answers_events_runs_or_errors(keyed: Server) -> None:
    task = f"{TASK} my key is {KEY} and the token is {OTHER_SECRET}"
    with keyed.client() as client:
        reply = client.post("/v1/chat/completions", json={
            "model": "arith", "messages": [{"role": "user", "content": task}]})
        assert reply.status_code == 200
        run_id = reply.json()["concilium"]["run_id"]
        seen = [reply.text]
        with client.stream("POST", "/v1/chat/completions", json={
                "model": "arith", "stream": True,
                "messages": [{"role": "user", "content": task}]}) as stream:
            seen.append("".join(stream.iter_text()))
        seen.append(client.get(f"/runs/{run_id}").text)
        seen.append(client.get("/runs").text)
        with client.stream("GET", f"/runs/{run_id}/events") as events:
            seen.append("".join(events.iter_text()))
        for model in (KEY, OTHER_SECRET):  # a secret echoed in an error message
            seen.append(client.post("/v1/chat/completions", json={
                "model": model, "messages": [{"role": "user", "content": "x"}]}).text)
        seen.append(client.post("/runs", json={"team": OTHER_SECRET, "task": "x"}).text)
    text = "\n".join(seen)
    assert "411" in text and "***" in text
    assert KEY not in text and OTHER_SECRET not in text


def test_refuses_to_bind_beyond_loopback_without_a_key() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CONCILIUM_API_KEY", None)
    code = "import sys; from concilium.cli.app import main; sys.argv[0] = 'concilium'; main()"
    done = subprocess.run([sys.executable, "-c", code, "serve", "--host", "0.0.0.0",
                           "--teams", str(REPO / "examples" / "teams")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without an API key" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.1.2.3"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.com"))
