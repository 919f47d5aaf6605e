"""Atomic outputs: a killed writer leaves no complete-looking file, and its temporaries are removed
when the output is written again (only that output's); torch files are byte-stable."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from wsjds.io import atomic_path, remove_stale_temporaries, save_torch
from wsjds.proposals.store import ProposalStore, ProposalWriter


def killed_writer(out, directory: bool = False) -> None:
    """Start writing ``out`` through atomic_path in a subprocess and SIGKILL it halfway."""
    body = "tmp.mkdir(); (tmp / 'part').write_bytes(b'x')" if directory else "tmp.write_bytes(b'half')"
    code = textwrap.dedent(f"""
        import os, signal
        from wsjds.io import atomic_path
        with atomic_path({str(out)!r}) as tmp:
            {body}
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert result.returncode == -9


def test_a_rerun_removes_the_temporaries_a_killed_writer_left(tmp_path):
    out, other = tmp_path / "test.0-of-2.h5", tmp_path / "test.1-of-2.h5"
    killed_writer(out)
    killed_writer(other)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and all(name.endswith(".tmp") and name.startswith(".test.") for name in left)
    assert not out.exists()
    with ProposalWriter(out, dataset="synth", split="test", source="test", parameters={}) as writer:
        writer.append("000001", 10, 10, np.array([[0, 0, 5, 5]], np.float32), np.zeros(1, np.float32))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert out.name in names and len(names) == 2                              # out's temporary is gone
    assert any(name.startswith(f".{other.name}.") for name in names)          # the other output's is kept
    with ProposalStore.open(out, dataset="synth", split="test") as store:
        assert store.image_ids == ("000001",)


def test_a_killed_directory_writer_is_cleaned_too(tmp_path):
    out = tmp_path / "dataset"
    killed_writer(out, directory=True)
    (stale,) = tmp_path.iterdir()
    assert stale.is_dir() and stale.name.startswith(".dataset.")
    assert remove_stale_temporaries(out) == [stale] and not stale.exists()


def test_names_with_glob_characters_match_only_themselves(tmp_path):
    (tmp_path / ".a[1].h5.x.tmp").write_bytes(b"")
    (tmp_path / ".a1.h5.x.tmp").write_bytes(b"")
    assert [p.name for p in remove_stale_temporaries(tmp_path / "a[1].h5")] == [".a[1].h5.x.tmp"]
    assert (tmp_path / ".a1.h5.x.tmp").exists()


def test_save_torch_is_byte_stable_and_atomic(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 3}
    save_torch(tmp_path / "a.pt", state)
    save_torch(tmp_path / "b.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], state["w"])
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "c.pt"):
            raise RuntimeError("fails halfway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]
