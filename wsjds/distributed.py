"""Data-parallel training processes (torch.distributed): start ``world_size`` of them on this node,
and add up their gradients so that any world size trains the same model.

Why not ``DistributedDataParallel``: its bucketed all-reduce adds the ranks' partial sums in the
order of the ring (NCCL may pick another one per run) and averages, so the weights depend on the
GPU count and drift apart under the CGL objective's thresholds. Here the sum of an update is the
one a single process computes, a left fold over the update's visits in visit order
(``gradient_sum: visit_order``): rank r receives the running sum of ranks < r, adds its own visits'
gradients one by one and passes it on; the last rank broadcasts the total. That costs each rank
but the first one gradient copy per visit it holds; ``rank_order`` instead gathers the ranks'
partial sums and adds them in rank order (one copy, deterministic for a given world size, equal
to one process's only to rounding).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from wsjds.cli import THREAD_VARIABLES
from wsjds.errors import UserError

log = logging.getLogger(__name__)


class DistributedError(UserError, RuntimeError):
    """The processes of a training job cannot start, or one of them failed."""


@dataclass(frozen=True)
class DistributedConfig:
    """config.yaml ``distributed`` (sources there) with the recipe's ``world_size``."""

    world_size: int
    gradient_sum: str               # "visit_order" (one process's sum, exactly) or "rank_order"
    gradient_bucket_mb: float
    timeout_minutes: float

    @classmethod
    def from_settings(cls, settings: dict) -> "DistributedConfig":
        section = settings["distributed"]
        return cls(world_size=settings["training"]["world_size"], gradient_sum=section["gradient_sum"],
                   gradient_bucket_mb=section["gradient_bucket_mb"], timeout_minutes=section["timeout_minutes"])


class Ranks:
    """The processes of one training job as the engine sees them. ``Ranks()`` is the single process,
    for which every method is the identity; inside a process group it communicates."""

    def __init__(self, rank: int = 0, world_size: int = 1, bucket_bytes: int = 1 << 28,
                 gradient_sum: str = "visit_order"):
        if gradient_sum not in ("visit_order", "rank_order"):
            raise DistributedError(f"distributed.gradient_sum must be visit_order or rank_order, got {gradient_sum!r}")
        self.rank, self.world_size, self.bucket_bytes = rank, world_size, bucket_bytes
        self.gradient_sum = gradient_sum

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, scalars and the log's progress."""
        return self.rank == 0

    def share(self, visits_per_update: int) -> tuple[int, int]:
        """This rank's visits of each update: offsets ``[first, end)`` inside the update's
        ``visits_per_update`` consecutive visits (consecutive blocks, rank 0 first)."""
        if visits_per_update % self.world_size:
            raise DistributedError(f"effective_batch {visits_per_update} is not a multiple of world_size "
                                   f"{self.world_size}: every process must take the same number of images per update")
        block = visits_per_update // self.world_size
        return self.rank * block, (self.rank + 1) * block

    def sum_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace each tensor by its sum over the ranks, added in rank order (in place)."""
        if self.world_size == 1 or not tensors:
            return
        groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        for tensor in tensors:
            groups.setdefault((tensor.dtype, tensor.device), []).append(tensor)
        for group in groups.values():
            flat = torch.cat([t.reshape(-1) for t in group])
            step = max(1, self.bucket_bytes // flat.element_size())
            for start in range(0, flat.numel(), step):
                self._sum_in_rank_order(flat[start:start + step])
            offset = 0
            for tensor in group:
                tensor.copy_(flat[offset:offset + tensor.numel()].view_as(tensor))
                offset += tensor.numel()

    def reached_anywhere(self, reached: list[bool]) -> list[bool]:
        """Per parameter: whether any rank's visits gave it a gradient."""
        if self.world_size == 1:
            return reached
        flags = torch.stack(self.gather_tensor(torch.tensor(reached, dtype=torch.uint8)))
        return flags.amax(dim=0).bool().tolist()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order."""
        if self.world_size == 1:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def gather_tensor(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        if self.world_size == 1:
            return [tensor]
        device = _collective_device()
        out = [torch.empty_like(tensor, device=device) for _ in range(self.world_size)]
        dist.all_gather(out, tensor.to(device))
        return [t.to(tensor.device) for t in out]

    def _sum_in_rank_order(self, chunk: torch.Tensor) -> None:
        parts = self.gather_tensor(chunk)
        chunk.copy_(parts[0])
        for part in parts[1:]:
            chunk.add_(part)


class UpdateSum:
    """What one rank adds up during an SGD update (the parameters' gradients and the task's
    ``accumulators``, e.g. center-loss statistics), summed over the ranks at the update's end as
    ``Ranks.gradient_sum`` says. Rank 0 (and a single process) accumulates in place as usual; in
    ``visit_order`` the other ranks set each visit's contribution aside."""

    def __init__(self, parameters: Iterable[torch.nn.Parameter], accumulators: Sequence[torch.Tensor], ranks: Ranks):
        self.parameters = list(parameters)
        self.accumulators = list(accumulators)
        self.ranks = ranks
        self.keep_visits = ranks.world_size > 1 and ranks.rank > 0 and ranks.gradient_sum == "visit_order"
        self.visits: list[torch.Tensor] = []
        self.reached = [False] * len(self.parameters)

    def after_visit(self) -> None:
        """Call after each visit's backward."""
        if not self.keep_visits:
            return
        self._collect_reached()
        self.visits.append(self._flat())
        for parameter in self.parameters:
            parameter.grad = None
        for accumulator in self.accumulators:
            accumulator.zero_()

    def finish(self) -> None:
        """Leave the update's gradient total in every parameter's ``.grad`` (``None`` where no rank's
        visit reached it, so the optimiser skips it as in one process) and the accumulators' running
        totals in the accumulators, on every rank."""
        if self.ranks.world_size == 1:
            return
        self._collect_reached()
        reached = self.ranks.reached_anywhere(self.reached)
        for parameter, any_rank in zip(self.parameters, reached):
            if any_rank and parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        if self.ranks.gradient_sum == "rank_order":
            self.ranks.sum_([p.grad for p, any_rank in zip(self.parameters, reached) if any_rank] + self.accumulators)
        else:
            self._fold_in_visit_order()
        for parameter, any_rank in zip(self.parameters, reached):
            if not any_rank:
                parameter.grad = None
        self.visits, self.reached = [], [False] * len(self.parameters)

    def release_accumulators(self) -> None:
        """After the task used the totals: ranks > 0 start the next update from zero, so that rank 0
        alone carries the running total forward."""
        if self.ranks.world_size > 1 and self.ranks.rank > 0:
            for accumulator in self.accumulators:
                accumulator.zero_()

    def _fold_in_visit_order(self) -> None:
        """Rank 0's running sum travels through the ranks; each adds its visits to it in order, the
        adds one process makes. Zeros stand for unreached parameters: adding them changes no bit."""
        rank, world_size = self.ranks.rank, self.ranks.world_size
        device = _collective_device()
        if rank == 0:
            total = self._flat().to(device)
        else:
            total = torch.empty(self._size(), dtype=torch.float32, device=device)
            dist.recv(total, src=rank - 1)
            for visit in self.visits:
                total.add_(visit.to(device))
        if rank < world_size - 1:
            dist.send(total, dst=rank + 1)
        dist.broadcast(total, src=world_size - 1)
        offset = 0
        for parameter in self.parameters:          # reached nowhere: grad None, its zeros skipped
            if parameter.grad is not None:
                parameter.grad.copy_(total[offset:offset + parameter.numel()].view_as(parameter).to(parameter.device))
            offset += parameter.numel()
        for accumulator in self.accumulators:
            accumulator.copy_(total[offset:offset + accumulator.numel()].view_as(accumulator).to(accumulator.device))
            offset += accumulator.numel()

    def _size(self) -> int:
        return sum(p.numel() for p in self.parameters) + sum(a.numel() for a in self.accumulators)

    def _collect_reached(self) -> None:
        self.reached = [seen or p.grad is not None for seen, p in zip(self.reached, self.parameters)]

    def _flat(self) -> torch.Tensor:
        """Gradients (zeros for a parameter without one), then accumulators, in one float32 vector."""
        parts = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
                 for p in self.parameters]
        parts += [a.reshape(-1) for a in self.accumulators]
        return torch.cat([part.float() for part in parts])


def run_processes(worker: Callable[..., None], args: tuple, config: DistributedConfig, device: torch.device,
                  threads: int) -> None:
    """Run ``worker(ranks, device, *args)`` in ``config.world_size`` processes on this node (gloo on
    CPU, NCCL on CUDA: rank r on cuda:r), ``threads`` CPU threads shared among them. A process that
    fails stops the others and raises :class:`DistributedError` with its traceback."""
    check_world_size(config.world_size, device)
    per_rank = max(1, threads // config.world_size)
    rendezvous = tempfile.mkdtemp(prefix="wsjds-ranks-")
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(per_rank) for name in THREAD_VARIABLES})   # read by each process's torch at import
    log.info("starting %d training processes (%s, %d CPU threads each)", config.world_size,
             "nccl" if device.type == "cuda" else "gloo", per_rank)
    try:
        torch.multiprocessing.start_processes(
            _process_main, args=(config, device.type, per_rank, rendezvous, logging.getLogger().level, worker, args),
            nprocs=config.world_size, join=True, start_method="spawn")
    except torch.multiprocessing.ProcessRaisedException as error:
        raise DistributedError(f"training process {error.error_index} of {config.world_size} failed, so all were "
                               f"stopped; no complete checkpoint was written (a rerun resumes from the last partial "
                               f"one):\n{error}") from None
    except torch.multiprocessing.ProcessExitedException as error:
        raise DistributedError(f"training process {error.error_index} of {config.world_size} died (exit code "
                               f"{error.exit_code}), so all were stopped; no complete checkpoint was written (a rerun "
                               f"resumes from the last partial one)") from None
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(rendezvous, ignore_errors=True)


def check_world_size(world_size: int, device: torch.device) -> None:
    """Fail before any work when the node cannot host ``world_size`` processes: one GPU each on
    CUDA, one core each on CPU."""
    if device.type == "cuda":
        available, what = torch.cuda.device_count(), "visible CUDA devices (CUDA_VISIBLE_DEVICES)"
        if device.index is not None and world_size > 1:
            raise DistributedError(f"world_size {world_size} places rank r on cuda:r; pass --device cuda, not {device}")
    else:
        available, what = len(os.sched_getaffinity(0)), "CPU cores this job may use"
    if world_size > available:
        raise DistributedError(f"training.world_size is {world_size} but there are only {available} {what}")


def _process_main(rank: int, config: DistributedConfig, device_type: str, threads: int, rendezvous: str,
                  log_level: int, worker: Callable[..., None], args: tuple) -> None:
    logging.basicConfig(level=log_level if rank == 0 else max(log_level, logging.WARNING), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s")
    torch.set_num_threads(threads)
    if device_type == "cuda":
        torch.cuda.set_device(rank)
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method=f"file://{rendezvous}/store",
                            rank=rank, world_size=config.world_size, timeout=timedelta(minutes=config.timeout_minutes))
    try:
        worker(Ranks(rank, config.world_size, int(config.gradient_bucket_mb * 2**20), config.gradient_sum), device, *args)
    finally:
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    """NCCL moves CUDA tensors only; gloo CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
