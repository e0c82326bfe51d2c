"""Who this process is in a data-parallel job, and the Lightning environment that says so.

A job has ``nodes`` nodes with ``local_size`` processes each (one per GPU, or CPU ranks
on gloo); the processes are started by Slurm's srun or by submitit's local executor,
never by Lightning. :func:`current_world` reads the rank layout from submitit's job
environment (a single process outside a job), and :class:`JobEnvironment` hands it to
Lightning's DDP strategy, so the same code runs on 8 GPUs x N nodes and on 2 CPU ranks.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import timedelta

import submitit
import torch.distributed as dist
from lightning.fabric.plugins.environments import ClusterEnvironment

__all__ = ["World", "current_world", "in_submitit_job", "JobEnvironment", "share_from_main"]


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` ranks on ``nodes`` nodes."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    nodes: int = 1
    node: int = 0
    main_address: str = "127.0.0.1"
    main_port: int = 29500
    job_id: str | None = None

    @property
    def local_size(self) -> int:
        return self.size // self.nodes

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def in_submitit_job() -> bool:
    """Whether this process is a task of a submitit job (Slurm or local)."""
    return "SUBMITIT_EXECUTOR" in os.environ or "SUBMITIT_LOCAL_JOB_ID" in os.environ


def current_world() -> World:
    """The rank layout of this process (a world of one outside a submitit job)."""
    if not in_submitit_job():
        return World()
    env = submitit.JobEnvironment()
    if env.num_tasks == 1:
        return World(job_id=str(env.job_id))
    # One node: loopback needs no name resolution. Several: the first node's name, as
    # every node resolves it.
    address = "127.0.0.1" if env.num_nodes == 1 else env.hostnames[0]
    # The job id picks the port, so every rank agrees without talking; a requeued job
    # keeps its id and so its port, after the previous allocation has released it.
    port = random.Random(f"primebench-{env.job_id}").randint(20_000, 60_000)
    return World(
        rank=env.global_rank,
        local_rank=env.local_rank,
        size=env.num_tasks,
        nodes=env.num_nodes,
        node=env.node,
        main_address=address,
        main_port=int(os.environ.get("MASTER_PORT", port)),
        job_id=str(env.job_id),
    )


def share_from_main(world: World, value: str | None, timeout: timedelta) -> str:
    """The main rank's ``value`` on every rank, before any process group exists.

    The ranks meet in a TCP key-value store beside the job's port: the others wait (up
    to ``timeout``) for the main rank to decide, e.g. whether a run is to be trained,
    while it waits for something of its own (the run's lease). ``value`` is ignored on
    the other ranks. A world of one returns ``value`` at once."""
    if world.size == 1:
        assert value is not None
        return value
    store = dist.TCPStore(
        world.main_address,
        world.main_port + 1,
        world.size,
        is_master=world.is_main,
        timeout=timeout,
        wait_for_workers=False,
    )
    if world.is_main:
        assert value is not None
        store.set("primebench/decision", value)
        # The store lives in this process: keep it until every rank has read.
        store.wait([f"primebench/read/{r}" for r in range(1, world.size)], timeout)
        return value
    shared = store.get("primebench/decision").decode()
    store.set(f"primebench/read/{world.rank}", "1")
    return shared


class JobEnvironment(ClusterEnvironment):
    """Lightning's view of a :class:`World` whose processes were started for it."""

    def __init__(self, world: World):
        super().__init__()
        self.world = world

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return self.world.main_address

    @property
    def main_port(self) -> int:
        return self.world.main_port

    @staticmethod
    def detect() -> bool:
        return True

    def world_size(self) -> int:
        return self.world.size

    def set_world_size(self, size: int) -> None:
        if size != self.world.size:
            raise ValueError(f"Lightning asked for {size} processes; the job has {self.world.size}")

    def global_rank(self) -> int:
        return self.world.rank

    def set_global_rank(self, rank: int) -> None:
        if rank != self.world.rank:
            raise ValueError(f"Lightning computed rank {rank}; the job says {self.world.rank}")

    def local_rank(self) -> int:
        return self.world.local_rank

    def node_rank(self) -> int:
        return self.world.node
