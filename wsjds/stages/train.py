"""Training in resumable rounds (one Snakemake job each), for CGL and for Fast R-CNN alike.

The run is a fixed sequence of image visits (wsjds.data.dataset); every ``effective_batch`` visits
make one SGD update (gradient accumulation, so one device replays the authors' 4 GPUs x 1 image x
32 recipe). With ``world_size`` processes (wsjds.distributed) each takes a fixed block of every
update's visits and the gradients are added in visit order, as one process adds them, so any
world size makes the same updates. The updates are split into ``rounds``; round k resumes from round k-1's checkpoint and
writes its own. Inside a round, a partial checkpoint every ``checkpoint_every_updates`` lets a
killed job resume where it stopped; dropout and augmentation are seeded per visit, so a resumed run
gives the same weights as an uninterrupted one on CPU.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from wsjds.cgl.objective import Objective
from wsjds.data.dataset import Sample, TrainingImages, VisitRange, keep_sample
from wsjds.data.transforms import Augmentation
from wsjds.distributed import DistributedConfig, Ranks, UpdateSum, run_processes
from wsjds.errors import UserError
from wsjds.io import atomic_path, save_torch

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "wsjds.checkpoint"
CHECKPOINT_VERSION = 1


class TrainingTask(Protocol):
    """What the engine trains: a model, other state saved with it, and a loss per visit.
    ``progress`` is the fraction of the whole run's visits done so far."""

    model: torch.nn.Module
    state_modules: dict[str, torch.nn.Module]
    accumulators: list[torch.Tensor]      # summed over the visits of an update like gradients (wsjds.distributed)

    def objective(self, sample: Sample, progress: float) -> Objective: ...

    def after_update(self, visits_done: int, visits_per_update: int) -> None: ...


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (too many non-finite losses, a checkpoint that does not fit)."""


@dataclass(frozen=True)
class TrainingConfig:
    """A ``training.<preset>`` entry of config.yaml (sources there)."""

    augmentation: Augmentation
    optimizer: str                  # "sgd" (the authors' recipe) or "adam" (AdamW; trains small nets from scratch)
    epochs: float
    effective_batch: int
    lr: float
    momentum: float
    weight_decay: float
    bias_lr_mult: float
    bias_weight_decay: float
    lr_steps: tuple[float, ...]     # fractions of the updates at which the lr is multiplied by lr_gamma
    lr_gamma: float
    rounds: int
    seed: int
    max_proposals: int
    amp_bf16: bool
    compile: bool
    max_bad_images: int
    checkpoint_every_updates: int
    num_workers: int
    world_size: int                 # processes per training job (wsjds.distributed)

    @classmethod
    def from_config(cls, cfg: Mapping) -> "TrainingConfig":
        return cls(
            augmentation=Augmentation.from_config(cfg["augmentation"]),
            optimizer=cfg["optimizer"], epochs=cfg["epochs"], effective_batch=cfg["effective_batch"], lr=cfg["lr"], momentum=cfg["momentum"],
            weight_decay=cfg["weight_decay"], bias_lr_mult=cfg["bias_lr_mult"],
            bias_weight_decay=cfg["bias_weight_decay"], lr_steps=tuple(cfg["lr_steps"]), lr_gamma=cfg["lr_gamma"],
            rounds=cfg["rounds"], seed=cfg["seed"], max_proposals=cfg["max_proposals"], amp_bf16=cfg["amp_bf16"],
            compile=cfg["compile"], max_bad_images=cfg["max_bad_images"],
            checkpoint_every_updates=cfg["checkpoint_every_updates"], num_workers=cfg["num_workers"],
            world_size=cfg["world_size"],
        )


@dataclass(frozen=True)
class Schedule:
    """The whole run in numbers: images per epoch, SGD updates, and each round's update range."""

    num_images: int
    effective_batch: int
    total_updates: int
    round_bounds: tuple[int, ...]          # update index at which round k starts; last entry = total

    @classmethod
    def plan(cls, num_images: int, cfg: TrainingConfig) -> "Schedule":
        total = max(1, math.ceil(cfg.epochs * num_images / cfg.effective_batch))
        if cfg.rounds > total:
            raise TrainingError(f"{cfg.rounds} rounds but only {total} SGD updates in the whole run")
        bounds = tuple(round(k * total / cfg.rounds) for k in range(cfg.rounds + 1))
        return cls(num_images, cfg.effective_batch, total, bounds)

    @property
    def total_visits(self) -> int:
        return self.total_updates * self.effective_batch

    def round_visits(self, round_number: int) -> tuple[int, int]:
        """Visit range [start, end) of round ``round_number`` (1-based)."""
        start, end = self.round_bounds[round_number - 1], self.round_bounds[round_number]
        return start * self.effective_batch, end * self.effective_batch


class Trainer:
    """Model, optimiser, center-loss memory and progress of one run; saves and restores all of it."""

    def __init__(self, settings: Mapping[str, Any], source, proposals: str | Path, device: torch.device,
                 task_factory: Callable[..., TrainingTask] | None = None, targets: str | Path | None = None,
                 ranks: Ranks | None = None):
        self.settings = settings
        self.cfg = TrainingConfig.from_config(settings["training"])
        self.device = device
        self.ranks = ranks or Ranks()
        self.share = self.ranks.share(self.cfg.effective_batch)
        torch.manual_seed(self.cfg.seed)
        if task_factory is None:
            from wsjds.cgl.task import CGLTask as task_factory
        self.task: TrainingTask = task_factory(settings, device, amp_bf16=self.cfg.amp_bf16)
        self.model = self.task.model
        if self.cfg.optimizer == "adam":
            self.optimizer = torch.optim.AdamW(self._parameter_groups(), lr=self.cfg.lr)
        else:
            self.optimizer = torch.optim.SGD(self._parameter_groups(), lr=self.cfg.lr, momentum=self.cfg.momentum)
        self.data = TrainingImages(source, proposals, self.cfg.augmentation, self.cfg.seed,
                                   self.cfg.max_proposals, total_visits=0, targets=targets)
        self.schedule = Schedule.plan(len(self.data.ids), self.cfg)
        self.data.total_visits = self.schedule.total_visits
        if self.data.skipped:
            log.info("%d images have no positive label and are left out of training", self.data.skipped)
        self.visit = 0
        self.round_number = 0
        self.bad_images = 0
        self._bad_in_update = 0       # this rank's skipped visits of the running update
        self.scalars: list[dict[str, Any]] = []
        self.sums = UpdateSum((p for p in self.model.parameters() if p.requires_grad), self.task.accumulators, self.ranks)
        if self.cfg.compile:
            self.model.backbone = torch.compile(self.model.backbone)

    # --- the loop ----------------------------------------------------------------------------------

    def run_round(self, round_number: int, partial: Path | None = None, progress: bool = True) -> None:
        """Train the visits of ``round_number`` from :attr:`visit` on; save partial checkpoints."""
        start, end = self.schedule.round_visits(round_number)
        batch = self.cfg.effective_batch
        if not start <= self.visit <= end or self.visit % batch:
            raise TrainingError(f"round {round_number} covers visits {start}..{end}, but the model is at visit "
                                f"{self.visit}: resume from round {round_number - 1}'s checkpoint")
        self.round_number = round_number
        last = self.share[1]
        loader = DataLoader(self.data, batch_size=None, sampler=VisitRange(self.visit, end, batch, self.share),
                            num_workers=self.cfg.num_workers, collate_fn=keep_sample,
                            worker_init_fn=_single_threaded_worker)
        pending: dict[str, list[float]] = {}
        tic = time.perf_counter()
        bar = tqdm(total=end - self.visit, desc=f"round {round_number}", unit="img",
                   disable=not (progress and self.ranks.is_main))
        self.optimizer.zero_grad(set_to_none=True)
        for sample in loader:
            self._train_image(sample, batch, pending)
            if sample.visit % batch != last - 1:
                continue
            update = sample.visit // batch + 1
            row = self._finish_update(update, pending)
            pending = {}
            bar.update(batch)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            elapsed, tic = time.perf_counter() - tic, time.perf_counter()
            # The throughput goes to the log only: checkpoints and scalar files hold no wall-clock
            # number, so the same config and seed give the same bytes.
            log.info("update %d/%d: %s, images_per_s=%.3g", update, self.schedule.total_updates,
                     ", ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)), batch / elapsed)
            if (partial is not None and self.ranks.is_main and update % self.cfg.checkpoint_every_updates == 0
                    and self.visit < end):
                self.save(partial)
        bar.close()
        cache = getattr(self.task, "cache", None)
        if cache is not None and cache.hits + cache.misses:
            log.info("frozen-feature cache: %d hits, %d misses, %.1f MB", cache.hits, cache.misses, cache.bytes / 1e6)

    def _finish_update(self, update: int, pending: dict[str, list[float]]) -> dict[str, Any]:
        """End update ``update`` (1-based) on every rank alike: sum the gradients and the task's
        statistics over the ranks, step, and return the update's scalar row (means over its visits)."""
        batch = self.cfg.effective_batch
        self.visit = update * batch
        self.sums.finish()
        merged: dict[str, list[float]] = {}
        bad = 0
        for rank_pending, rank_bad in self.ranks.gather((pending, self._bad_in_update)):   # rank order = visit order
            bad += rank_bad
            for name, values in rank_pending.items():
                merged.setdefault(name, []).extend(values)
        self.bad_images += bad
        self._bad_in_update = 0
        self._check_bad_images(self.bad_images)
        self.task.after_update(self.visit, batch)
        self.sums.release_accumulators()
        self._set_lr(update - 1)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        row = self._scalar_row(update, merged)
        self.scalars.append(row)
        return row

    def _train_image(self, sample, batch: int, pending: dict[str, list[float]]) -> None:
        torch.manual_seed(self.cfg.seed * 1_000_003 + sample.visit)     # dropout masks: a function of the visit
        objective = self.task.objective(sample, sample.visit / self.schedule.total_visits)
        if not torch.isfinite(objective.loss):
            self._bad_in_update += 1
            log.warning("non-finite loss on image %s (visit %d): %s; skipped (%d so far)", sample.image_id,
                        sample.visit, objective.terms, self.bad_images + self._bad_in_update)
            self._check_bad_images(self.bad_images + self._bad_in_update)
            return
        (objective.loss / batch).backward(inputs=self.sums.parameters)
        self.sums.after_visit()
        for name, value in {"loss": float(objective.loss.detach()), **objective.terms, **objective.stats}.items():
            pending.setdefault(name, []).append(value)

    def _check_bad_images(self, count: int) -> None:
        if count > self.cfg.max_bad_images:
            raise TrainingError(f"more than {self.cfg.max_bad_images} images gave a non-finite loss")

    def _scalar_row(self, update: int, pending: dict[str, list[float]]) -> dict[str, Any]:
        row: dict[str, Any] = {"round": self.round_number, "update": update, "visit": self.visit,
                               "lr": self.optimizer.param_groups[0]["lr"]}
        row.update({name: sum(values) / len(values) for name, values in pending.items()})
        return row

    def _set_lr(self, update: int) -> None:
        decays = sum(update >= step * self.schedule.total_updates for step in self.cfg.lr_steps)
        lr = self.cfg.lr * self.cfg.lr_gamma**decays
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """Weights and biases (the authors' bias lr x 2, no decay), each split into the trunk's trained
        layers (``models.<m>.trunk_lr_mult``) and the rest."""
        trunk_mult = self.settings["model"]["trunk_lr_mult"]
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, parameter in self.model.named_parameters():
            if parameter.requires_grad:
                groups.setdefault((name.startswith("backbone."), name.endswith("bias")), []).append(parameter)
        out = []
        for (in_trunk, is_bias), params in sorted(groups.items()):
            mult = (self.cfg.bias_lr_mult if is_bias else 1.0) * (trunk_mult if in_trunk else 1.0)
            decay = self.cfg.bias_weight_decay if is_bias else self.cfg.weight_decay
            out.append({"params": params, "lr_mult": mult, "weight_decay": decay, "lr": self.cfg.lr * mult})
        return out

    # --- checkpoints -------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "settings_hash": settings_hash(self.settings),
                "settings": json.dumps(self.settings, sort_keys=True), "round": self.round_number,
                "visit": self.visit, "bad_images": self.bad_images, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "modules": {name: module.state_dict() for name, module in self.task.state_modules.items()},
                "torch_rng": torch.get_rng_state(), "scalars": self.scalars}

    def save(self, path: Path) -> None:
        save_torch(path, self.state())

    def load(self, path: Path, expect_round: int | None = None, remedy: str = "") -> None:
        """Restore a checkpoint of this run. One trained with other settings is refused (naming the
        keys that differ, then ``remedy``): continuing from it would mix two runs in one model."""
        state = load_checkpoint(path)
        if expect_round is not None and state["round"] != expect_round:
            raise TrainingError(f"{path}: checkpoint of round {state['round']}, expected round {expect_round}")
        differing = settings_differences(json.loads(state["settings"]), self.settings)
        if differing:
            raise TrainingError(f"{path} was trained with other settings than this run's; differing: "
                                + "; ".join(differing) + (f". {remedy}" if remedy else ""))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for name, module in self.task.state_modules.items():
            module.load_state_dict(state["modules"][name])
        torch.set_rng_state(state["torch_rng"])
        self.visit, self.round_number = int(state["visit"]), int(state["round"])
        self.bad_images, self.scalars = int(state["bad_images"]), list(state["scalars"])


def train_round(settings: Mapping[str, Any], source, proposals: str | Path, round_number: int, out: str | Path,
                previous: str | Path | None, scalars_csv: str | Path | None = None, device: str = "auto",
                progress: bool = True, task_factory: Callable[..., TrainingTask] | None = None,
                targets: str | Path | None = None, threads: int = 1) -> dict[str, Any]:
    """Run round ``round_number`` (1-based) in ``training.world_size`` processes and write its
    checkpoint to ``out`` (atomically); returns what :func:`load_checkpoint` reads from it.

    Resumes from ``out``'s partial checkpoint (``<out>.partial``) when a killed job left one, else
    from ``previous`` (round k-1's checkpoint; None for round 1). ``threads`` CPU threads are shared
    by the processes. ``source`` and ``task_factory`` must pickle when ``world_size`` > 1.
    """
    config = DistributedConfig.from_settings(settings)
    args = (settings, source, proposals, round_number, out, previous, scalars_csv, progress, task_factory, targets)
    if config.world_size == 1:
        train_round_here(Ranks(), resolve_device(device), *args)
    else:
        run_processes(train_round_here, args, config, resolve_device(device), threads)
    return load_checkpoint(out)


def train_round_here(ranks: Ranks, device: torch.device, settings: Mapping[str, Any], source,
                     proposals: str | Path, round_number: int, out: str | Path, previous: str | Path | None,
                     scalars_csv: str | Path | None = None, progress: bool = True,
                     task_factory: Callable[..., TrainingTask] | None = None,
                     targets: str | Path | None = None) -> Trainer:
    """:func:`train_round` in this process, as rank ``ranks.rank`` (rank 0 writes the files)."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    trainer = Trainer(settings, source, proposals, device, task_factory, targets, ranks)
    if not 1 <= round_number <= trainer.cfg.rounds:
        raise TrainingError(f"round {round_number} is outside 1..{trainer.cfg.rounds} (training.rounds)")
    if partial.is_file():
        trainer.load(partial, expect_round=round_number,
                     remedy=f"It is the partial checkpoint of a killed job; delete it to train round {round_number} "
                            f"from its start with the new settings: rm {partial}")
        log.info("resuming round %d from %s at visit %d", round_number, partial, trainer.visit)
    elif round_number > 1:
        if previous is None:
            raise TrainingError(f"round {round_number} needs round {round_number - 1}'s checkpoint")
        trainer.load(Path(previous), expect_round=round_number - 1,
                     remedy=f"Train round {round_number - 1} again with these settings first")
    start, end = trainer.schedule.round_visits(round_number)
    log.info("round %d/%d: visits %d..%d (updates %d..%d of %d, effective batch %d, %d images, %d processes)",
             round_number, trainer.cfg.rounds, start, end, start // trainer.cfg.effective_batch,
             end // trainer.cfg.effective_batch, trainer.schedule.total_updates, trainer.cfg.effective_batch,
             trainer.schedule.num_images, ranks.world_size)
    trainer.run_round(round_number, partial, progress)
    if ranks.is_main:
        trainer.save(out)
        partial.unlink(missing_ok=True)
        if scalars_csv is not None:
            write_scalars(scalars_csv, [row for row in trainer.scalars if row["round"] == round_number])
    return trainer


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint, loaded with ``weights_only=True`` and checked to be one."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path}: not a wsjds training checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise TrainingError(f"{path}: checkpoint version {state.get('version')}, this wsjds reads {CHECKPOINT_VERSION}")
    return state


def write_scalars(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Per-update scalars as CSV (columns: the union of the rows' keys, in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def settings_hash(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def settings_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` (JSON values) for every dotted key whose value differs, except those that
    cannot change a trained number (:data:`RESUME_NEUTRAL_KEYS`)."""
    flat_old, flat_new = _flatten(json.loads(json.dumps(old))), _flatten(json.loads(json.dumps(new)))
    return [f"{key}: {_shown(flat_old, key)} -> {_shown(flat_new, key)}"
            for key in sorted(flat_old.keys() | flat_new.keys())
            if key not in RESUME_NEUTRAL_KEYS and flat_old.get(key, _ABSENT) != flat_new.get(key, _ABSENT)]


# How often partial checkpoints are written, how many loader processes read images, and how many
# training processes share each update (and how they talk): none changes a weight beyond float
# rounding (wsjds.distributed), so a resume may differ in them.
RESUME_NEUTRAL_KEYS = frozenset({"training.checkpoint_every_updates", "training.num_workers", "training.world_size",
                                 "distributed.gradient_sum", "distributed.gradient_bucket_mb",
                                 "distributed.timeout_minutes"})


_ABSENT = object()


def _shown(flat: Mapping[str, Any], key: str) -> str:
    return json.dumps(flat[key]) if key in flat else "(absent)"


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _single_threaded_worker(_: int) -> None:
    torch.set_num_threads(1)
