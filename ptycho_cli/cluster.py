"""``--dask``: where the workers of a ``group`` run, and what they used.

``--dask local`` / ``local:N`` starts a ``distributed.LocalCluster`` of N
single-threaded worker processes on this machine (each within
``--dask-memory-limit``) for the length of the command; any other value is
the address of a running scheduler (``tcp://host:8786``) or the path of its
scheduler file (``dask scheduler --scheduler-file FILE``), whose workers
must see INPUT and OUT at the same paths.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from typing import Iterator, List, Optional

from .options import UsageError

__all__ = ["add_dask_options", "check_dask_flags", "dask_client", "cluster_summary",
           "parse_local"]

LOCAL_RE = re.compile(r"local(?::(?P<n>[0-9]+))?")


def add_dask_options(p) -> None:
    g = p.add_argument_group("cluster (needs the dask and zarr extras)")
    g.add_argument("--dask", metavar="ADDRESS", default=None,
                   help="gather and write on Dask workers into a Zarr store: 'local' or "
                        "'local:N' (N worker processes on this machine, default one per CPU), "
                        "a scheduler address (tcp://host:8786) or a scheduler file (.json)")
    g.add_argument("--dask-memory-limit", metavar="SIZE", default=None,
                   help="memory limit of each local worker, e.g. 512MiB or 2GB (default: "
                        "this machine's memory shared between the workers)")


def parse_local(address: str) -> Optional[int]:
    """Workers of ``local`` / ``local:N`` (0 for ``local``: one per CPU), None for an address."""
    m = LOCAL_RE.fullmatch(address)
    if m is None:
        return None
    n = int(m["n"]) if m["n"] is not None else 0
    if m["n"] is not None and n < 1:
        raise UsageError(f"--dask local:N needs N >= 1, got {address!r}")
    return n


def check_dask_flags(args) -> None:
    """Refuse meaningless --dask combinations before any work."""
    if args.dask is None:
        if args.dask_memory_limit is not None:
            raise UsageError("--dask-memory-limit applies with --dask local[:N] only")
        return
    local = parse_local(args.dask)
    if args.dask_memory_limit is not None:
        if local is None:
            raise UsageError("--dask-memory-limit applies to a local cluster (--dask local[:N]); "
                             "a running cluster's workers have their own limits")
        try:
            from dask.utils import parse_bytes
            args.dask_memory_limit = parse_bytes(args.dask_memory_limit)
        except ImportError:
            pass  # dask_client says which extra to install
        except (ValueError, TypeError):
            raise UsageError(f"--dask-memory-limit must be a size such as 512MiB or 2GB, "
                             f"got {args.dask_memory_limit!r}") from None


@contextlib.contextmanager
def dask_client(args) -> Iterator[Optional[object]]:
    """A ``distributed.Client`` for ``--dask`` (closed, and a local cluster stopped, after), or None."""
    if args.dask is None:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("--dask needs dask.distributed: pip install "
                          "'ptycho-grouping[dask,zarr]'") from None
    local = parse_local(args.dask)
    # distributed logs every worker start and stop at INFO: quiet unless -vv.
    if args.verbose < 2:
        logging.getLogger("distributed").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        if local is not None:
            n = local or os.cpu_count() or 1
            # ":0": the scheduler's HTTP server on a free port (None still tries 8787,
            # and warns when another cluster holds it).
            cluster = stack.enter_context(_closing_quietly(LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                memory_limit=args.dask_memory_limit or "auto")))
            client = stack.enter_context(Client(cluster))
        elif args.dask.endswith(".json"):
            client = stack.enter_context(Client(scheduler_file=args.dask))
        else:
            client = stack.enter_context(Client(args.dask))
        yield client


@contextlib.contextmanager
def _closing_quietly(cluster):
    """``cluster``, closed at the end without letting a failed close hide the run's own error.

    distributed can trip over a worker it is restarting while it shuts down
    (``AssertionError: can only join a started process`` after workers were
    killed); that says nothing about the run.
    """
    try:
        yield cluster
    finally:
        try:
            cluster.close()
        except Exception as exc:  # noqa: BLE001 - see the docstring
            logging.getLogger(__name__).debug("closing the local cluster: %r", exc)


def cluster_summary(args, client) -> List[str]:
    """Summary lines: the cluster used and each worker's peak resident memory."""
    if client is None:
        return []
    from .memory import worker_peak_kib
    info = client.scheduler_info(n_workers=-1) if _takes_n_workers(client) else \
        client.scheduler_info()
    workers = info.get("workers", {})
    limits = {w.get("memory_limit") for w in workers.values()}
    limit = (f", {limits.pop() / 2**20:.0f} MiB limit each"
             if len(limits) == 1 and None not in limits and 0 not in limits else "")
    lines = [f"cluster     {args.dask} ({len(workers)} workers{limit})"]
    try:
        peaks = worker_peak_kib(client)
    except Exception:  # a worker gone meanwhile: the summary is not worth an error
        return lines
    values = [v.get("VmHWM", 0) / 1024 for _, v in sorted(peaks.items())]
    if values:
        lines.append("worker peak " + " / ".join(f"{v:.0f}" for v in values)
                     + " MiB (resident, per worker process)")
    return lines


def _takes_n_workers(client) -> bool:
    import inspect
    return "n_workers" in inspect.signature(client.scheduler_info).parameters
