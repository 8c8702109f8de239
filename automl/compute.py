"""Where the model search runs: a Dask cluster, shared or started for one training."""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager


def worker_count(n_jobs: int) -> int:
    return (os.cpu_count() or 1) if n_jobs == -1 else n_jobs


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
