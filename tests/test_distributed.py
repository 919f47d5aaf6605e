"""Training in several processes (torch.distributed, gloo on CPU): the sums match hand-computed
values, two processes train the same model as one at the same effective batch (bit for bit in
visit order, to rounding in rank order), a dying process stops the round
without a complete-looking checkpoint and the rerun resumes, and impossible world sizes fail first."""

from __future__ import annotations

import copy
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml
from training_helpers import tiny_training_run

from wsjds import workflow as wf
from wsjds.cgl.task import CGLTask
from wsjds.distributed import (DistributedConfig, DistributedError, Ranks, UpdateSum, check_world_size,
                               run_processes)
from wsjds.stages.train import Trainer, load_checkpoint, train_round

# fc8d's bias has an exact gradient of 0 (the softmax over proposals ignores a per-class shift): it
# only ever holds rounding noise of a few 1e-9, which no relative tolerance can compare.
ROUNDING_NOISE = 1e-8


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, repo_root):
    """The tiny run with updates of 4 visits (2 per process at world_size 2) and the centres moving
    after every update, so the centre statistics are summed across processes too."""
    source, store, settings = tiny_training_run(tmp_path_factory.mktemp("distributed"), repo_root)
    settings["training"].update(effective_batch=4, epochs=4, rounds=2)        # 24 visits: 6 updates, 3 per round
    settings["cgl"]["center_loss"]["update_every_images"] = 4
    return source, store, settings


def with_world_size(settings: dict, world_size: int) -> dict:
    changed = copy.deepcopy(settings)
    changed["training"]["world_size"] = world_size
    return changed


@pytest.fixture
def one_thread():
    """The in-process run on 1 thread, as each of the 2 processes: a CPU op's float sums may
    depend on its thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def train_two_rounds(settings: dict, source, store, run: Path, world_sizes: tuple[int, int]) -> None:
    for k, world_size in enumerate(world_sizes, start=1):
        train_round(with_world_size(settings, world_size), source, store, k, run / f"round{k}.pt",
                    run / f"round{k - 1}.pt" if k > 1 else None, progress=False, threads=world_size)


def test_two_processes_train_the_same_model_as_one(tiny, tmp_path, one_thread):
    """Round 1 in 2 processes, round 2 resumed in 1: the checkpoints' weights, optimiser moments,
    centres and scalars are bit-identical to the one-process run (gradient_sum visit_order)."""
    source, store, settings = tiny
    train_two_rounds(settings, source, store, tmp_path / "one", (1, 1))
    train_two_rounds(settings, source, store, tmp_path / "two", (2, 1))
    for k in (1, 2):
        expected, got = load_checkpoint(tmp_path / "one" / f"round{k}.pt"), load_checkpoint(tmp_path / "two" / f"round{k}.pt")
        for part in ("model", "modules"):
            flat_expected, flat_got = flatten(expected[part]), flatten(got[part])
            assert flat_expected.keys() == flat_got.keys()
            assert all(torch.equal(flat_expected[key], flat_got[key]) for key in flat_expected), (k, part)
        assert all(torch.equal(a, b) for a, b in zip(flatten(expected["optimizer"]["state"]).values(),
                                                      flatten(got["optimizer"]["state"]).values()))
        assert expected["visit"] == got["visit"] == 12 * k and expected["scalars"] == got["scalars"]
    one_round1 = load_checkpoint(tmp_path / "one" / "round1.pt")
    assert not torch.equal(one_round1["modules"]["center"]["centres"], torch.randn(
        one_round1["modules"]["center"]["centres"].shape, generator=torch.Generator().manual_seed(0)))   # they moved


def test_rank_order_sums_match_one_process_to_rounding_only(tiny, tmp_path, one_thread):
    """gradient_sum rank_order adds (g0 + g1) + (g2 + g3) where one process adds ((g0 + g1) + g2) + g3.
    With SGD (a step proportional to the gradient, so a lost or halved rank would show) the six
    updates' weights agree to 1e-6 relative; BENCHMARKS.md shows them drifting over longer runs."""
    source, store, settings = tiny
    settings = copy.deepcopy(settings)
    settings["training"].update(rounds=1, optimizer="sgd", lr=0.01, momentum=0.9)
    settings["distributed"]["gradient_sum"] = "rank_order"
    for run, world_size in (("one", 1), ("two", 2)):
        train_round(with_world_size(settings, world_size), source, store, 1, tmp_path / run / "round1.pt", None,
                    progress=False, threads=world_size)
    expected, got = (load_checkpoint(tmp_path / run / "round1.pt")["model"] for run in ("one", "two"))
    initial = Trainer(settings, source, store, torch.device("cpu")).model.state_dict()
    for key in expected:
        if expected[key].is_floating_point():
            difference = (expected[key].double() - got[key].double()).abs().max().item()
            step = (expected[key].double() - initial[key].double()).abs().max().item()
            assert difference <= 1e-6 * expected[key].abs().max().item() + ROUNDING_NOISE, (key, difference)
            assert step > 1e3 * difference or step < ROUNDING_NOISE, (key, step, difference)   # it trained


def flatten(tree, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a nested state dict, by dotted key."""
    out: dict[str, torch.Tensor] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, torch.Tensor):
            out[f"{prefix}{key}"] = value
    return out


class DiesOnRank1(CGLTask):
    """The CGL task, but the process of rank 1 is killed (SIGKILL) at visit 18: in the second
    update of round 2 (visits 12..23), after the partial checkpoint of its first."""

    def objective(self, sample, progress):
        if dist.get_rank() == 1 and sample.visit == 18:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().objective(sample, progress)


def test_a_dying_process_stops_the_round_and_the_rerun_resumes(tiny, tmp_path, one_thread):
    source, store, settings = tiny
    clean = tmp_path / "clean"
    train_two_rounds(settings, source, store, clean, (1, 1))       # the reference: bit-identical to 2 processes

    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy(clean / "round1.pt", killed / "round1.pt")
    two = with_world_size(settings, 2)
    with pytest.raises(DistributedError, match=r"process 1 of 2 died \(exit code -9\).*no complete checkpoint"):
        train_round(two, source, store, 2, killed / "round2.pt", killed / "round1.pt", progress=False,
                    task_factory=DiesOnRank1, threads=2)
    partial = killed / "round2.pt.partial"
    assert not (killed / "round2.pt").exists() and load_checkpoint(partial)["visit"] == 16     # update 4 done
    resumed = train_round(two, source, store, 2, killed / "round2.pt", killed / "round1.pt", progress=False, threads=2)
    assert not partial.exists()
    expected = load_checkpoint(clean / "round2.pt")
    assert all(torch.equal(expected["model"][k], resumed["model"][k]) for k in expected["model"])


def summing_worker(ranks: Ranks, device: torch.device, out: Path) -> None:
    """Rank r holds [r + 1, 10 (r + 1), ...]; one parameter's gradient only on rank 1, one nowhere."""
    values = [torch.arange(5, dtype=torch.float32) * (ranks.rank + 1), torch.full((2, 3), 10.0 * (ranks.rank + 1))]
    ranks.sum_(values)
    result = {"values": values, "gathered": ranks.gather({"rank": ranks.rank})}
    for gradient_sum in ("visit_order", "rank_order"):
        ranks.gradient_sum = gradient_sum
        everywhere, only_on_rank1, nowhere = (torch.nn.Parameter(torch.zeros(n)) for n in (2, 3, 2))
        gradients = UpdateSum([everywhere, only_on_rank1, nowhere], [], ranks)
        for visit in range(2):                      # two visits per rank: 0.5, 0.25 on rank 0; 1.5, 0.75 on rank 1
            loss = (everywhere * (ranks.rank + 1) / 2 ** (visit + 1)).sum() * (2 * ranks.rank + 1)
            if ranks.rank == 1:
                loss = loss + (only_on_rank1 * torch.tensor([1.0, 2.0, 3.0])).sum()
            loss.backward(inputs=[everywhere, only_on_rank1, nowhere] if ranks.rank == 1 else [everywhere])
            gradients.after_visit()
        gradients.finish()
        result[gradient_sum] = [p.grad for p in (everywhere, only_on_rank1, nowhere)]
    torch.save(result, out / f"rank{ranks.rank}.pt")


def test_sums_over_processes_match_hand_computed_values(tmp_path):
    """rank_order in buckets of 8 bytes (two float32), so a tensor is split over several messages."""
    config = DistributedConfig(world_size=2, gradient_sum="visit_order", gradient_bucket_mb=8 / 2**20,
                               timeout_minutes=1)
    run_processes(summing_worker, (tmp_path,), config, torch.device("cpu"), threads=2)
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert result["values"][0].tolist() == [0.0, 3.0, 6.0, 9.0, 12.0]       # 1x + 2x
        assert result["values"][1].tolist() == [[30.0] * 3] * 2
        assert result["gathered"] == [{"rank": 0}, {"rank": 1}]
        for gradient_sum in ("visit_order", "rank_order"):
            everywhere, only_on_rank1, nowhere = result[gradient_sum]
            assert everywhere.tolist() == [0.5 + 0.25 + 2 * 3 * (0.5 + 0.25)] * 2    # rank 0's visits + rank 1's
            assert only_on_rank1.tolist() == [2.0, 4.0, 6.0]                         # two visits on rank 1
            assert nowhere is None                                  # reached by no rank: the optimiser skips it


def test_impossible_world_sizes_fail_before_any_work(tiny, tmp_path):
    source, store, settings = tiny
    cores = len(os.sched_getaffinity(0))
    with pytest.raises(DistributedError, match=f"world_size is {cores + 1} but there are only {cores} CPU cores"):
        train_round(with_world_size(settings, cores + 1), source, store, 1, tmp_path / "round1.pt", None,
                    device="cpu", progress=False, threads=2)
    with pytest.raises(DistributedError, match="only 0 visible CUDA devices") if not torch.cuda.is_available() \
            else pytest.raises(DistributedError, match="visible CUDA devices"):
        check_world_size(torch.cuda.device_count() + 1, torch.device("cuda"))
    with pytest.raises(DistributedError, match="effective_batch 4 is not a multiple of world_size 3"):
        Ranks(0, 3).share(4)
    assert Ranks(1, 2).share(4) == (2, 4) and Ranks().share(4) == (0, 4)
    assert not (tmp_path / "round1.pt").exists() and not list(tmp_path.iterdir())


def test_the_workflow_refuses_a_world_size_that_does_not_divide_the_batch(repo_root):
    """Checked when the workflow starts, before any job: each process takes an equal share."""
    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    wf.check_references(config)
    config["training"]["paper"]["world_size"] = 3
    with pytest.raises(ValueError, match="training.paper: effective_batch 128 is not a multiple of world_size 3"):
        wf.check_references(config)
    config["training"]["paper"]["world_size"] = 4                 # the authors' 4 GPUs
    wf.check_references(config)
    assert wf.world_size(config, "voc07") == 4 and wf.world_size(config, "synth") == 1
