"""How a stage runs (not what it computes): the options every stage command shares."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from audioprep.core.params import param


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a stage runs (not what it computes): declared once for every stage command.

    These never enter stage.json's parameters. ``overwrite`` and ``quiet`` are set by
    ``audioprep run`` itself, so a chain config may only give ``jobs`` and ``fail-fast``.

    >>> RunOptions(jobs=2).runner_kwargs()
    {'jobs': 2, 'fail_fast': False, 'overwrite': False, 'progress': None, 'batch_size': 1}
    >>> type(RunOptions(executor="ray").runner_kwargs()["executor"]).__name__
    'RayExecutor'
    """

    jobs: int = param(
        0, help="Parallel workers; 0 means one per core.", flags=("--jobs", "-j"), min=0
    )
    fail_fast: bool = param(False, help="Stop at the first failed item.", flags=("--fail-fast",))
    overwrite: bool = param(
        False, help="Discard what OUT_DIR holds and start afresh.", flags=("--overwrite",)
    )
    quiet: bool = param(False, help="No progress bar.", flags=("--quiet", "-q"))
    executor: str = param(
        "local",
        help="Where items run: local worker processes, or the actors of a Ray cluster "
        "(docs/cluster.md).",
        choices=("local", "ray"),
    )
    ray_address: str | None = param(
        None,
        help="With --executor ray: the cluster's HOST:PORT (default $AUDIOPREP_RAY_ADDRESS, "
        "else a Ray started on this machine).",
        metavar="HOST:PORT",
    )
    batch_size: int = param(
        1,
        help="Items per worker call; model stages (segment --engine ina, speaker-filter) run "
        "a batch's items through the model together.",
        min=1,
    )

    #: Fields `audioprep run` sets itself; a chain config may not give them.
    CHAIN_RESERVED: typing.ClassVar[frozenset[str]] = frozenset({"overwrite", "quiet"})
    #: Fields a chain config may set for every stage at its top level (as `jobs:`).
    CHAIN_DEFAULTS: typing.ClassVar[tuple[str, ...]] = (
        "jobs",
        "executor",
        "ray_address",
        "batch_size",
    )

    def runner_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`audioprep.run.runner.run_stage` these options give.

        ``--executor ray`` gives a :class:`~audioprep.run.executors.ray.RayExecutor` (Ray itself
        is imported only when the run starts).
        """
        kwargs: dict[str, Any] = {
            "jobs": self.jobs,
            "fail_fast": self.fail_fast,
            "overwrite": self.overwrite,
            "progress": False if self.quiet else None,
            "batch_size": self.batch_size,
        }
        if self.executor == "ray":
            from audioprep.run.executors.ray import RayExecutor

            kwargs["executor"] = RayExecutor(self.ray_address, batch_size=self.batch_size)
        return kwargs
