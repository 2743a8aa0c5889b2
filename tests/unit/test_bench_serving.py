"""The serving benchmark's computations: wrk's summary, the open-loop client's counting and
its rate search, the ASGI ceiling app, and the table it writes into one document section."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Any

import pytest

from scripts.asgi_ceiling import ANSWER, Message, app
from scripts.bench_serving import summarize_wrk
from scripts.bench_serving_table import BATCH_TITLE, SECTION_TITLE, main, render
from scripts.bench_subjects import V2_BODY
from scripts.open_loop import (
    OpenLoopResult,
    StepResult,
    holds,
    open_loop,
    parse_head,
    search_rate,
    step_load,
    summarize_step,
)
from training.features import EXAMPLE_FEATURES, MODEL_COLUMNS, encode_row

WRK_OUT = """Running 3s test @ http://127.0.0.1:40000/predict
  1 threads and 8 connections
  Latency Distribution
     50%    1.00ms
  12000 requests in 3.00s, 2.0MB read
Requests/sec:   4000.00
WRK_JSON {"requests": 12000, "duration_us": 3000000, "connect": 0, "read": 2, "write": 1, \
"status": 600, "timeout": 3, "p50_us": 1000, "p90_us": 2500, "p99_us": 7250, "max_us": 9000}
"""


def test_wrk_summary_counts_good_answers_and_socket_errors():
    summary = summarize_wrk(WRK_OUT)
    assert summary["good_rps"] == (12000 - 600) / 3
    assert (summary["non_2xx"], summary["socket_errors"]) == (600, 6)
    assert (summary["p50_ms"], summary["p99_ms"], summary["seconds"]) == (1.0, 7.25, 3.0)


def test_wrk_output_without_the_summary_line_is_an_error():
    with pytest.raises(ValueError, match="WRK_JSON"):
        summarize_wrk("Running 3s test\nunable to connect to 127.0.0.1:1 Connection refused\n")


def _searched(limit: float, first: float, ceiling: float, probes: int) -> tuple[float, list[float]]:
    tried: list[float] = []

    def holds_at(rate: float) -> bool:
        tried.append(rate)
        return rate <= limit

    return search_rate(holds_at, first, ceiling, probes, quantum=10), tried


def test_search_bisects_towards_the_highest_rate_that_holds():
    found, tried = _searched(limit=437, first=400, ceiling=750, probes=5)
    assert tried == [400, 580, 490, 440, 420]
    assert found == 420


def test_search_stops_when_the_bracket_is_one_quantum_wide():
    found, tried = _searched(limit=437, first=400, ceiling=750, probes=50)
    assert found == 430
    assert tried[-1] in (430, 440)
    assert len(tried) < 12


def test_search_finds_nothing_when_no_rate_holds():
    found, tried = _searched(limit=0, first=80, ceiling=150, probes=10)
    assert found == 0
    assert tried == [80, 40, 20, 10]


def _result(**fields: Any) -> OpenLoopResult:
    return OpenLoopResult(**{"rate": 100.0, "seconds": 1.0, "sent": 100, "good": 100,
                             "p99_ms": 50.0, **fields})  # fmt: skip


def test_a_rate_holds_only_with_every_answer_good_and_p99_within_the_bound():
    assert holds(_result(), 100)
    assert holds(_result(p99_ms=100.0), 100)
    assert not holds(_result(p99_ms=100.5), 100)
    assert not holds(_result(good=99, non_2xx=1), 100)
    assert not holds(_result(good=99, errors=1), 100)
    assert not holds(_result(sent=0, good=0, p99_ms=None), 100)


def test_response_head_gives_status_and_length():
    head = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\ncontent-length:  42\r\n\r\n"
    assert parse_head(head) == (503, 42)
    with pytest.raises(ValueError, match="Content-Length"):
        parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")


async def _serve_statuses(statuses: list[int]) -> tuple[asyncio.Server, str, list[bytes]]:
    """A keep-alive HTTP server on 127.0.0.1 answering the given statuses in turn."""
    bodies: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed the connection
                return
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            bodies.append(await reader.readexactly(length))
            status = statuses[(len(bodies) - 1) % len(statuses)]
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\n{{}}".encode())

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/predict", bodies


def test_open_loop_counts_the_requests_scheduled_in_the_counted_window():
    async def scenario() -> tuple[OpenLoopResult, list[bytes]]:
        server, url, bodies = await _serve_statuses([200, 200, 200, 503])
        async with server:
            result = await open_loop(url, b'{"x": 1}', 200, 0.1, 0.2, connections=4)
        return result, bodies

    result, bodies = asyncio.run(scenario())
    assert bodies == [b'{"x": 1}'] * 60
    assert (result.sent, result.good + result.non_2xx, result.errors) == (40, 40, 0)
    assert 9 <= result.non_2xx <= 11  # every 4th answer, in the order the server saw them
    assert result.p99_ms is not None
    assert 0 < result.connections <= 4, "the pool never opens more than its cap"
    assert not holds(result, 1e9)


def test_a_step_load_sends_both_rates_and_counts_each_phase():
    async def scenario() -> tuple[StepResult, list[bytes]]:
        server, url, bodies = await _serve_statuses([200, 503])
        async with server:
            result = await step_load(url, b"{}", 100, 50, 0.2, connections=4)
        return result, bodies

    result, bodies = asyncio.run(scenario())
    assert len(bodies) == 20 + 10
    assert result.overload_sent + result.after_sent == 30
    assert result.overload_good + result.overload_refused == result.overload_sent
    assert result.overload_refused > 0
    assert result.after_good < result.after_sent, "every other answer is a 503"
    assert result.recovery_s > 0


def test_the_step_summary_splits_at_the_drop_and_times_the_recovery():
    start = 100.0
    records = [
        (100.0, 200, 100.05),
        (100.1, 503, 100.102),
        (100.2, 500, 100.3),
        (101.0, 503, 101.4),  # sent after the drop (at 101): recovery ends at its answer
        (101.5, 200, 101.52),
    ]
    result = summarize_step(records, start, StepResult(high=3, low=2, seconds=1.0))
    assert (result.overload_sent, result.overload_good, result.overload_refused) == (3, 1, 1)
    assert result.overload_errors == 1
    assert result.admitted_p99_ms == 50.0
    assert result.refused_p50_ms == result.refused_p99_ms == 2.0
    assert (result.after_sent, result.after_good, result.after_p99_ms) == (2, 1, 20.0)
    assert result.recovery_s == 0.4


def test_open_loop_counts_a_refused_connection_as_an_error():
    async def scenario() -> OpenLoopResult:
        server, url, _ = await _serve_statuses([200])
        server.close()
        await server.wait_closed()
        return await open_loop(url, b"{}", 100, 0, 0.1, connections=2)

    result = asyncio.run(scenario())
    assert (result.sent, result.good, result.errors, result.p99_ms) == (10, 0, 10, None)


def test_mlserver_gets_the_model_row_of_the_example():
    (tensor,) = json.loads(V2_BODY)["inputs"]
    assert tensor["shape"] == [1, len(MODEL_COLUMNS)] == [1, 12]
    assert tensor["data"] == encode_row(EXAMPLE_FEATURES)


def test_the_ceiling_reads_and_parses_the_body_then_answers_a_constant():
    sent: list[Message] = []
    parts: list[Message] = [{"body": b'{"features": ', "more_body": True}, {"body": b"{}}"}]

    async def receive() -> Message:
        return parts.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http"}, receive, send))
    assert not parts
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == ANSWER
    parts[:] = [{"body": b"{not json"}]
    with pytest.raises(json.JSONDecodeError):
        asyncio.run(app({"type": "http"}, receive, send))


def _report() -> dict[str, Any]:
    def closed(subject: str, round_no: int, rps: float) -> dict[str, Any]:
        return {"subject": subject, "limit": "1 core", "round": round_no, "connections": 8,
                "good_rps": rps, "p50_ms": 2.0, "p99_ms": 9.0, "non_2xx": 1,
                "socket_errors": 0, "idle_rss_mb": 190.0, "peak_rss_mb": 200.0 + round_no,
                "server_cpu": 1.0, "client_cpu": 0.2}  # fmt: skip

    probe = asdict(_result(rate=500.0, p99_ms=80.0, client_cpu=0.1, server_cpu=0.25))
    failed = asdict(_result(rate=700.0, p99_ms=300.0))
    return {
        "conditions": {"date": "2026-11-29T00:00:00+00:00", "commit": "abc1234",
                       "cpu_model": "AMD EPYC", "cores": 2, "kernel": "6", "python": "3.11.7",
                       "versions": {"bentoml": "1.4.40"}, "load_average_start": [1.0, 1.0, 1.0],
                       "load_average_end": [2.0, 1.0, 1.0], "speed_probe_start_s": 0.2,
                       "speed_probe_end_s": 0.3},
        "model": {"tag": "wine_quality:v1"},
        "subjects": ["service", "mlserver"],
        "limits": {"1 core": {}},
        "settings": {"warmup": 3, "duration": 15, "rounds": 2, "p99_ms": 100.0, "probes": 5,
                     "probe_duration": 5.0, "open_duration": 60.0, "open_connections": 256},
        "closed_loop": [closed("mlserver", 1, 50.0), closed("service", 1, 300.0),
                        closed("service", 2, 340.0), closed("mlserver", 2, 70.0)],
        "open_loop": [{"subject": "service", "limit": "1 core", "held_rate": 500.0,
                       "held": probe, "confirms": [probe], "probes": [failed, probe]}],
    }  # fmt: skip


def test_table_has_one_row_per_subject_and_load_over_the_rounds():
    section = render(_report(), "build/bench/serving-x.json")
    assert section.startswith(SECTION_TITLE + "\n")
    rows = [line for line in section.splitlines() if line.startswith("| service |")]
    assert rows[0] == (
        "| service | 1 core | 8 | 320 | 300, 340 | 2.0 | 9.0 | 2 / 0 | 190 / 202 | 1.00 "
        "| 3137 | 0.20 |"
    )
    assert rows[1] == (
        "| service | 1 core | 500 | – | 80.0 | 0.25 | 0.10 | 0.0 | 0 | 700 ✗ 300, 500 ✓ 80, "
        "500 ✓ 80 |"
    )
    assert section.index("| service | 1 core | 8") < section.index("| mlserver | 1 core | 8")


def test_the_table_replaces_only_its_own_section(tmp_path):
    results = tmp_path / "serving.json"
    results.write_text(json.dumps(_report()))
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\n{SECTION_TITLE}\n\nold\n\n## Other\n\nkept\n")
    assert main([str(results), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "old" not in text
    assert text.endswith("\n## Other\n\nkept\n")
    assert "| mlserver | 1 core | 8 | 60 | 50, 70 |" in text


def test_a_batch_run_has_its_own_section_with_rows_per_second_and_no_open_loop():
    report = {**_report(), "batch_rows": 100}
    section = render(report, "build/bench/serving-x.json")
    assert section.startswith(BATCH_TITLE)
    service = [line for line in section.splitlines() if line.startswith("| service |")]
    assert service[0].endswith("| 32000 |"), "rows/s: the median req/s (320) x 100 rows"
    assert "Open loop" not in section
    assert "Overload" not in section
