"""Load bench: N light websocket sessions changing the calculator, M compare jobs, against a real `streamlit run`.

Why not 20 browsers: on a 2-core machine twenty Chromiums measure Chromium. This client speaks Streamlit's own
protocol (protobuf BackMsg/ForwardMsg over the `/_stcore/stream` websocket, 127.0.0.1 only): it opens a page,
finds the context box's widget id in the deltas, and sends new values the way the browser does, timing each
change from the BackMsg to the ForwardMsg `script_finished`. A session "stalls" when the server closes its
socket or no answer comes within --answer-timeout.

`--slow-reader S` makes each client pause S seconds before reading each answer, like a browser on a busy
machine: Streamlit's Starlette server queues at most 500 ForwardMsgs per client
(`WEBSOCKET_MAX_SEND_QUEUE_SIZE`) and closes the session when a slow client lets that queue fill, which is
what a page sending many deltas per rerun meets after a few quick changes (threat 31, docs/threats.md).

    .venv/bin/python bench/bench_load.py --sessions 10 --changes 8 --compare 0
    .venv/bin/python bench/bench_load.py --sessions 6 --changes 10 --burst --slow-reader 0.5

Prints one table: updates/s, latency median/p95, messages per rerun, server RSS before/peak/after, stalled
sessions. Bounded: every wait has a timeout, the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SessionResult:
    name: str
    latencies_s: list[float] = field(default_factory=list)
    messages_per_rerun: list[int] = field(default_factory=list)
    stalled: str = ""
    rss_while_open: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_WITH_QUEUE = ("import sys; from streamlit.web.server.starlette import starlette_websocket as w; "
               "w.WEBSOCKET_MAX_SEND_QUEUE_SIZE = int(sys.argv.pop(1)); from streamlit.web.cli import main; "
               "sys.argv[0] = 'streamlit'; sys.exit(main())")


def start_server(port: int, log: Path, send_queue: int | None = None, ping_s: int | None = None,
                 xsrf: bool = True) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    launcher = ["-m", "streamlit"] if send_queue is None else ["-c", _WITH_QUEUE, str(send_queue)]
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, *launcher, "run", str(ROOT / "app.py"),
                                 "--server.port", str(port), "--server.address", "127.0.0.1",
                                 "--server.headless", "true",
                                 *([f"--server.websocketPingInterval={ping_s}"] if ping_s else []),
                                 # the upload client sends no XSRF cookie (loopback-only bench server)
                                 *([] if xsrf else ["--server.enableXsrfProtection=false"])],
                                cwd=ROOT, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early; see {log}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                                                  timeout=2) as response:
            if response.status == 200:
                return proc
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("streamlit did not become healthy in 90 s")


# Like a browser: no client-side pings, and frames are taken off the socket (answering the server's pings) however
# slowly the page processes them: a browser's network layer buffers messages for its busy main thread.
_BROWSER_LIKE = {"subprotocols": ["streamlit"], "max_size": 2**28, "ping_interval": None, "max_queue": None}


def _describe_close(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    side = "server" if exc.rcvd else ("client" if exc.sent else "connection")
    return f"{side} closed the socket ({frame.code} {frame.reason})" if frame else "the connection dropped"


def _rerun(page: str, query: str, widgets: dict[str, tuple[str, object]] | None = None) -> bytes:
    msg = BackMsg()
    msg.rerun_script.query_string = query
    msg.rerun_script.page_name = page
    for widget_id, (kind, value) in (widgets or {}).items():
        state = msg.rerun_script.widget_states.widgets.add()
        state.id = widget_id
        setattr(state, kind, value)
    return msg.SerializeToString()


async def _until_finished(ws, result: SessionResult, timeout_s: float, slow_reader_s: float,
                          widget_ids: dict[str, str]) -> int:
    """Read ForwardMsgs until script_finished; return how many arrived. Records widget ids seen on the way."""
    count = 0
    while True:
        if slow_reader_s:
            await asyncio.sleep(slow_reader_s)
        raw = await asyncio.wait_for(ws.recv(), timeout=timeout_s)
        msg = ForwardMsg()
        msg.ParseFromString(raw)
        count += 1
        kind = msg.WhichOneof("type")
        if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            inner = getattr(element, element.WhichOneof("type") or "empty", None)
            widget_id = getattr(inner, "id", "")
            if widget_id:
                widget_ids[widget_id.rsplit("-", 1)[-1]] = widget_id
        if kind == "script_finished" and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            return count


async def calculator_session(url: str, index: int, changes: int, burst: bool, timeout_s: float,
                             slow_reader_s: float) -> SessionResult:
    result = SessionResult(f"calc-{index}")
    widget_ids: dict[str, str] = {}
    try:
        async with connect(url, **_BROWSER_LIKE, open_timeout=timeout_s) as ws:
            await ws.send(_rerun("calculator", "src=params&params=7B"))
            await _until_finished(ws, result, timeout_s, 0, widget_ids)
            ctx_id = widget_ids.get("w_ctx")
            if ctx_id is None:
                result.stalled = "no context widget found"
                return result
            values = [1024 * (index + k + 1) % 131072 + 1024 for k in range(changes)]
            if burst:  # a user typing fast: a change every 0.3 s whatever has been read so far
                finished: list[int] = []

                async def reader() -> None:
                    while True:
                        finished.append(await _until_finished(ws, result, timeout_s, slow_reader_s, widget_ids))

                reading = asyncio.create_task(reader())
                started = time.perf_counter()
                try:
                    for value in values:
                        await ws.send(_rerun("calculator", "", {ctx_id: ("int_value", value)}))
                        await asyncio.sleep(0.3)
                        if reading.done():
                            break
                    seen = len(finished)
                    deadline = time.monotonic() + timeout_s
                    while len(finished) == seen and not reading.done() and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)  # the answer to the last change
                finally:
                    reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, TimeoutError):
                        await reading
                result.messages_per_rerun.extend(finished)
                if reading.done() and not reading.cancelled() and reading.exception() is not None:
                    raise reading.exception()
                if not finished:
                    raise TimeoutError
                result.latencies_s.append(time.perf_counter() - started)
            else:
                for value in values:
                    started = time.perf_counter()
                    await ws.send(_rerun("calculator", "", {ctx_id: ("int_value", value)}))
                    result.messages_per_rerun.append(await _until_finished(ws, result, timeout_s, slow_reader_s,
                                                                           widget_ids))
                    result.latencies_s.append(time.perf_counter() - started)
    except TimeoutError:
        result.stalled = f"no answer in {timeout_s:g} s after {len(result.messages_per_rerun)} changes"
    except ConnectionClosed as exc:
        result.stalled = f"{_describe_close(exc)} after {len(result.messages_per_rerun)} changes"
    except OSError as exc:
        result.stalled = f"connection failed: {exc}"
    return result


async def compare_session(url: str, index: int, timeout_s: float) -> SessionResult:
    result = SessionResult(f"compare-{index}")
    try:
        async with connect(url, **_BROWSER_LIKE, open_timeout=60) as ws:
            started = time.perf_counter()
            await ws.send(_rerun("compare", "src=demo&run=1&runs=3"))
            result.messages_per_rerun.append(await _until_finished(ws, result, timeout_s, 0, {}))
            result.latencies_s.append(time.perf_counter() - started)
    except TimeoutError:
        result.stalled = f"no result in {timeout_s:g} s"
    except ConnectionClosed as exc:
        result.stalled = _describe_close(exc)
    return result


def _onnx_of_size(megabytes: int) -> bytes:
    """A valid single-file ONNX model (Y = X + W) padded with a zero initializer to about `megabytes` MB."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    padding = numpy_helper.from_array(np.zeros(megabytes * 250_000, dtype=np.float32), "padding")
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])],
                              initializer=[helper.make_tensor("W", TensorProto.FLOAT, [2], [1.0, 2.0]), padding])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _put_file(url: str, name: str, data: bytes) -> None:
    boundary = "quantlensbench" + os.urandom(8).hex()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="PUT",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()


async def upload_session(url: str, http: str, index: int, data: bytes, hold_s: float, timeout_s: float,
                         rss: Callable[[], int]) -> SessionResult:
    """Open the compare page, upload a model the way the browser does, keep the session open `hold_s`."""
    result = SessionResult(f"upload-{index}")
    widget_ids: dict[str, str] = {}
    try:
        async with connect(url, **_BROWSER_LIKE, open_timeout=timeout_s) as ws:
            await ws.send(_rerun("compare", "src=upload"))
            session_id = ""
            while True:  # the first run, remembering the session id
                msg = ForwardMsg()
                msg.ParseFromString(await asyncio.wait_for(ws.recv(), timeout=timeout_s))
                if msg.WhichOneof("type") == "new_session":
                    session_id = msg.new_session.initialize.session_id
                if msg.WhichOneof("type") == "delta" and msg.delta.WhichOneof("type") == "new_element":
                    element = msg.delta.new_element
                    widget_id = getattr(getattr(element, element.WhichOneof("type") or "empty", None), "id", "")
                    if widget_id:
                        widget_ids[widget_id.rsplit("-", 1)[-1]] = widget_id
                if msg.WhichOneof("type") == "script_finished" and \
                        msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    break
            uploader = widget_ids["cmp_model_file"]
            ask = BackMsg()
            ask.file_urls_request.request_id = f"r{index}"
            ask.file_urls_request.file_names.append("model.onnx")
            ask.file_urls_request.session_id = session_id
            await ws.send(ask.SerializeToString())
            while True:
                msg = ForwardMsg()
                msg.ParseFromString(await asyncio.wait_for(ws.recv(), timeout=timeout_s))
                if msg.WhichOneof("type") == "file_urls_response":
                    urls = msg.file_urls_response.file_urls[0]
                    break
            started = time.perf_counter()
            await asyncio.to_thread(_put_file, http + urls.upload_url, "model.onnx", data)
            run = BackMsg()
            run.rerun_script.page_name = "compare"
            state = run.rerun_script.widget_states.widgets.add()
            state.id = uploader
            info = state.file_uploader_state_value.uploaded_file_info.add()
            info.name, info.size, info.file_id = "model.onnx", len(data), urls.file_id
            info.file_urls.CopyFrom(urls)
            await ws.send(run.SerializeToString())
            result.messages_per_rerun.append(await _until_finished(ws, result, timeout_s, 0, widget_ids))
            result.latencies_s.append(time.perf_counter() - started)
            await asyncio.sleep(hold_s)  # the session stays connected with its upload kept
            result.rss_while_open = rss()
    except TimeoutError:
        result.stalled = f"no answer in {timeout_s:g} s"
    except (ConnectionClosed, KeyError, OSError) as exc:
        result.stalled = f"upload failed: {type(exc).__name__} {exc}"
    return result


def _rss_sampler(pid: int, stop: threading.Event, peak: list[int]) -> None:
    process = psutil.Process(pid)
    while not stop.is_set():
        with contextlib.suppress(psutil.Error):
            rss = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
            peak[0] = max(peak[0], rss)
        stop.wait(0.2)


async def run_load(url: str, args: argparse.Namespace, rss: Callable[[], int]) -> list[SessionResult]:
    tasks = [calculator_session(url, i, args.changes, args.burst, args.answer_timeout, args.slow_reader)
             for i in range(args.sessions)]
    tasks += [compare_session(url, i, args.compare_timeout) for i in range(args.compare)]
    if args.uploads:
        data = _onnx_of_size(args.upload_mb)
        http = url.replace("ws://", "http://").split("/_stcore")[0]
        tasks += [upload_session(url, http, i, data, args.hold, args.answer_timeout, rss) for i in range(args.uploads)]
    return await asyncio.gather(*tasks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--changes", type=int, default=8)
    parser.add_argument("--compare", type=int, default=0, help="demo compare jobs run at the same time")
    parser.add_argument("--burst", action="store_true", help="send every change before reading any answer")
    parser.add_argument("--slow-reader", type=float, default=0.0, help="seconds a client waits before each read")
    parser.add_argument("--answer-timeout", type=float, default=60.0)
    parser.add_argument("--compare-timeout", type=float, default=400.0)
    parser.add_argument("--uploads", type=int, default=0, help="sessions that each upload a model to /compare")
    parser.add_argument("--upload-mb", type=int, default=50)
    parser.add_argument("--hold", type=float, default=5.0, help="seconds an upload session stays open after it")
    parser.add_argument("--client-buffer", type=int, default=None,
                        help="messages a client buffers before it stops reading its socket (a busy renderer's "
                             "backpressure; then it cannot answer pings either); default: unbounded")
    parser.add_argument("--ping-interval", type=int, default=None,
                        help="server.websocketPingInterval for the server (Streamlit's default: 30 s, timeout 30 s)")
    parser.add_argument("--send-queue", type=int, default=None,
                        help="start the server with this per-client send queue instead of Streamlit's 500")
    args = parser.parse_args()
    if not (0 <= args.sessions <= 50 and 1 <= args.changes <= 100 and 0 <= args.compare <= 4
            and 0 <= args.uploads <= 10 and 1 <= args.upload_mb <= 190):
        parser.error("--sessions 0..50, --changes 1..100, --compare 0..4, --uploads 0..10, --upload-mb 1..190")

    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="quantlens-load-")) / "streamlit.log"
    server = start_server(port, log, args.send_queue, args.ping_interval, xsrf=not args.uploads)
    _BROWSER_LIKE["max_queue"] = args.client_buffer
    try:
        url = f"ws://127.0.0.1:{port}/_stcore/stream"
        server_process = psutil.Process(server.pid)
        before = server_process.memory_info().rss
        peak, stop = [before], threading.Event()
        sampler = threading.Thread(target=_rss_sampler, args=(server.pid, stop, peak), daemon=True)
        sampler.start()
        started = time.perf_counter()
        results = asyncio.run(run_load(url, args, lambda: server_process.memory_info().rss))
        elapsed = time.perf_counter() - started
        stop.set()
        sampler.join()
        after = server_process.memory_info().rss
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    calc = [r for r in results if r.name.startswith("calc")]
    latencies = sorted(x for r in calc for x in r.latencies_s)
    updates = sum(len(r.messages_per_rerun) for r in calc)
    per_rerun = [n for r in calc for n in r.messages_per_rerun]
    print(f"sessions={args.sessions} changes={args.changes} burst={args.burst} slow_reader={args.slow_reader:g}s "
          f"compare={args.compare} send_queue={args.send_queue or 'default (500)'} "
          f"client_buffer={args.client_buffer} ping_interval={args.ping_interval or 'default (30)'} cpus={os.cpu_count()}")
    print(f"{'metric':<34}{'value':>14}")
    rows = [
        ("calculator updates", f"{updates}"),
        ("updates/s (all sessions)", f"{updates / elapsed:.2f}"),
        ("latency median (s)", f"{statistics.median(latencies):.3f}" if latencies else "-"),
        ("latency p95 (s)", f"{latencies[int(0.95 * (len(latencies) - 1))]:.3f}" if latencies else "-"),
        ("ForwardMsgs per rerun (median)", f"{statistics.median(per_rerun):.0f}" if per_rerun else "-"),
        ("server RSS before (MB)", f"{before / 1e6:.0f}"),
        ("server+children RSS peak (MB)", f"{peak[0] / 1e6:.0f}"),
        ("server RSS after (MB)", f"{after / 1e6:.0f}"),
        ("stalled sessions", f"{sum(1 for r in results if r.stalled)} of {len(results)}"),
        ("wall time (s)", f"{elapsed:.1f}"),
    ]
    uploads = [r for r in results if r.name.startswith("upload") and not r.stalled]
    if uploads:
        rows.append((f"uploads of {args.upload_mb} MB done", f"{len(uploads)} of {args.uploads}"))
        rows.append(("upload+gate latency median (s)", f"{statistics.median(r.latencies_s[0] for r in uploads):.2f}"))
        rows.append(("server RSS, uploads open (MB)", f"{max(r.rss_while_open for r in uploads) / 1e6:.0f}"))
    for compare in (r for r in results if r.name.startswith("compare")):
        rows.append((f"{compare.name} (s)", f"{compare.latencies_s[0]:.1f}" if compare.latencies_s else "-"))
    for name, value in rows:
        print(f"{name:<34}{value:>14}")
    for r in results:
        if r.stalled:
            print(f"  stalled: {r.name}: {r.stalled}")
    print(f"server log: {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
