"""The instance's CPUs and memory, and where the model search runs: a Dask cluster, shared or
started for one training."""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future
from contextlib import contextmanager


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def instance_memory_bytes() -> int:
    """This container's memory limit (cgroup v2, then v1), else the machine's memory."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as limit:
                value = limit.read().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < 1 << 60:  # "max", or v1's "no limit" sentinel
            return int(value)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_job_memory_mb(max_concurrent_trainings: int) -> int:
    """The instance's memory, shared by the trainings that may run on it at once."""
    return int(instance_memory_bytes() / (1 << 20) / max(1, max_concurrent_trainings))


def worker_count(n_jobs: int) -> int:
    """-1: one per available CPU; otherwise ``n_jobs``, never more than there are CPUs."""
    return available_cpus() if n_jobs == -1 else max(1, min(n_jobs, available_cpus()))


@contextmanager
def dask_client(n_jobs: int, address: str | None = None):
    """A client of the scheduler at ``address`` if given, else of a local cluster for this block.

    The local cluster is ours rather than TPOT's so that its dashboard stays off (no port
    to collide with between concurrent jobs) and so it is always shut down.
    """
    from dask.distributed import Client, LocalCluster

    if address:
        with Client(address) as client:
            client.cluster = _RemoteCluster(client)
            yield client
        return
    # dashboard_address=None turns the dashboard off, but the scheduler still opens an HTTP
    # endpoint, on 8787 by default: a random loopback port instead, so jobs never collide.
    with LocalCluster(n_workers=worker_count(n_jobs), threads_per_worker=1, processes=True,
                      dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        yield client


@contextmanager
def dask_client_starting(n_jobs: int, address: str | None = None):
    """``dask_client`` started in a thread now; yields a function returning the client once up.

    Starting a local cluster takes seconds (more on a busy machine): begun while the baseline
    candidates are still being evaluated, that time is not taken from the search's budget. The
    cluster is shut down when the block ends, whether or not the client was ever asked for.
    """
    started: Future = Future()
    finished = threading.Event()

    def run():
        try:
            with dask_client(n_jobs, address) as client:
                started.set_result(client)
                finished.wait()
        except BaseException as err:  # noqa: BLE001 - handed to whoever asks for the client
            if not started.done():
                started.set_exception(err)

    thread = threading.Thread(target=run, name="dask-cluster", daemon=True)
    thread.start()
    try:
        yield started.result
    finally:
        finished.set()
        thread.join()


class _RemoteCluster:
    """What TPOT 1.1 reads from ``client.cluster``, for a client of a remote scheduler.

    TPOT sizes its queue with ``len(client.cluster.workers)``, which only a client it made
    itself (of a LocalCluster) has; a client given an address has ``cluster=None``.
    """

    def __init__(self, client):
        self._client = client

    @property
    def workers(self) -> dict:
        return self._client.scheduler_info(n_workers=-1)["workers"]

    @property
    def status(self):
        return self._client.status
