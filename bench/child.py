"""A benchmark process: one library's server or client, driven by the runner.

``python -m bench.child server NAME CORE`` starts NAME's echo server, prints
``{"port": N}`` and then answers ``stats`` (its CPU time and resident memory)
until ``quit``. ``python -m bench.child client NAME CORE`` runs the
workloads it reads, one JSON object a line (the workload and the server's
URL), and prints each result; at the
checkpoints of a workload it prints ``{"checkpoint": true}`` and waits for
``go``, so the runner can sample the server in between. Both pin themselves
to CPU ``CORE`` (:data:`NO_CORE`: not pinned). :func:`start_server` starts
such a server for a bench of its own. With ``BENCH_PROFILE=path`` a server runs under cProfile and
writes its statistics to ``path`` when told to quit.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from bench.peers import ASYNC_CLIENTS, LIBRARIES, SYNC_CLIENTS, run_loop, serve
from bench.workloads import (
    ASYNC_WORKLOADS,
    SYNC_WORKLOADS,
    AsyncConnect,
    BenchError,
    Result,
    Workload,
    cpu_seconds,
)

_output_lock = threading.Lock()


def emit(message: dict[str, Any]) -> None:
    """Send one JSON line to the runner."""
    with _output_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


NO_CORE = -1
"""The ``CORE`` of a process that is not pinned."""


def prepare(core: int) -> None:
    """Pin to ``core`` (when the machine has it) and allow as many files as the hard limit."""
    if 0 <= core < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {core})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_bytes() -> int:
    """Current resident memory of this process (not the peak)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_server(name: str) -> None:
    """Serve until the runner says ``quit`` or goes away."""
    profile_path = os.environ.get("BENCH_PROFILE")

    def control() -> None:
        for line in sys.stdin:
            if line.strip() == "stats":
                emit({"cpu": cpu_seconds(), "rss": rss_bytes()})
            elif line.strip() == "quit":
                break
        if profile_path:
            # The main thread stops its loop on SIGINT and writes the profile.
            os.kill(os.getpid(), signal.SIGINT)
        else:
            os._exit(0)

    threading.Thread(target=control, daemon=True).start()
    if not profile_path:
        serve(name, lambda port: emit({"port": port}))
        return
    import cProfile  # noqa: PLC0415  (only when profiling)

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        serve(name, lambda port: emit({"port": port}))
    except KeyboardInterrupt:
        pass
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)
    os._exit(0)


def start_server(
    name: str,
    core: int = NO_CORE,
    wrapper: Sequence[str] = (),
    stderr: int | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[str], int]:
    """Start ``python -m bench.child server NAME CORE`` under ``wrapper`` (valgrind, say).

    Return the process, whose standard input takes ``stats`` and ``quit``,
    and the port it serves on; the process is killed if it names none.
    """
    command = [*wrapper, sys.executable, "-m", "bench.child", "server", name, str(core)]
    server = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
    )
    assert server.stdout is not None
    try:
        port = int(json.loads(server.stdout.readline())["port"])
    except BaseException:
        server.kill()
        server.wait()
        raise
    return server, port


def server_stats(server: subprocess.Popen[str]) -> dict[str, Any]:
    """Ask a server :func:`start_server` started for its CPU seconds and resident bytes."""
    assert server.stdin is not None
    assert server.stdout is not None
    server.stdin.write("stats\n")
    server.stdin.flush()
    stats: dict[str, Any] = json.loads(server.stdout.readline())
    return stats


def checkpoint() -> None:
    """Let the runner sample the server, and wait until it has."""
    emit({"checkpoint": True})
    if sys.stdin.readline().strip() != "go":
        raise BenchError("the runner went away")


def run_job(
    name: str, url: str, workload: Workload, checkpoint: Callable[[], None] = checkpoint
) -> Result:
    """Run one workload with client library ``name``, calling ``checkpoint`` at its checkpoints."""
    if name in SYNC_CLIENTS:
        if workload.kind not in SYNC_WORKLOADS:
            raise BenchError(f"{name} does not run {workload.kind}")
        return SYNC_WORKLOADS[workload.kind](workload, SYNC_CLIENTS[name](url), checkpoint)
    client = ASYNC_CLIENTS[name.removesuffix("-uvloop")]

    async def main() -> Result:
        async with client(url) as connect:
            typed: AsyncConnect = connect
            return await ASYNC_WORKLOADS[workload.kind](workload, typed, checkpoint)

    flavor = LIBRARIES[name].flavor
    return run_loop(main(), flavor == "uvloop", flavor == "trio")


def run_client(name: str) -> None:
    """Run workloads until the runner says ``quit`` or goes away."""
    for line in sys.stdin:
        request = json.loads(line)
        if "job" not in request:
            break
        try:
            workload = Workload.from_json(request["job"])
            emit({"result": run_job(name, request["url"], workload)})
        except Exception as exc:
            emit({"error": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str]) -> None:
    """Parse the command line and run the server or the client."""
    role, name, core = argv[1], argv[2], int(argv[3])
    prepare(core)
    if role == "server":
        run_server(name)
    else:
        run_client(name)


if __name__ == "__main__":
    main(sys.argv)
