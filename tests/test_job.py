"""The job folder contract (ablate.study.job): every branch of next_action, status files and the lock."""

from __future__ import annotations

import os

import pytest

from ablate.errors import StudyError
from ablate.study.artifacts import State, Status, read_status, write_status
from ablate.study.job import STALE, Busy, Do, damaged_outputs, folder_lock, lock_holder, record_outputs, results_state
from ablate.study.job import next_action as next_for

H, T = "h1", "t1"  # the plan's result hash and train hash for the folder


def next_action(status: dict, **kwargs):
    """ablate.study.job.next_action on a status.json written as `status`."""
    return next_for(Status.model_validate(status), **kwargs)


def nxt(status: dict, **kwargs) -> Do:
    defaults = {"hash": H, "train_hash": T, "has_checkpoint": False, "tokens": 1000}
    return next_action(status, **{**defaults, **kwargs}).do


# ---- a training job (a variant, the pretraining) --------------------------------------------


def test_a_new_folder_trains():
    assert nxt({"state": "pending"}) == Do.TRAIN
    assert nxt({}) == Do.TRAIN  # no status file at all reads as pending
    assert next_action({"state": "pending"}, hash=H, train_hash=T, tokens=2048).why == "2,048 tokens"


def test_a_locked_folder_is_busy_whatever_its_state():
    for state in State:
        assert nxt({"state": state, "hash": H, "train_hash": T}, holder="pid 7 on n1") == Do.BUSY
    assert next_action({}, hash=H, train_hash=T, holder="pid 7 on n1").why == "pid 7 on n1"


def test_done_under_the_same_hash_is_skipped():
    assert nxt({"state": "done", "hash": H, "train_hash": T, "trained": True}, has_checkpoint=True) == Do.SKIP
    assert nxt({"state": "done", "hash": H, "train_hash": T}) == Do.SKIP  # results, even without a checkpoint


def test_training_for_another_train_hash_is_stale_in_any_state():
    for state in (State.TRAINING, State.EVALUATING, State.DONE, State.FAILED):
        assert nxt({"state": state, "hash": "h0", "train_hash": "t0"}, has_checkpoint=True) == Do.STALE
    then = next_action({"state": "training", "train_hash": "t0"}, hash=H, train_hash=T)
    assert then.why == "trained for hash t0, the plan now says t1"


def test_only_the_evaluation_changed_re_evaluates_without_training():
    trained = {"state": "done", "hash": "other-eval", "train_hash": T, "trained": True}
    assert nxt(trained, has_checkpoint=True) == Do.EVALUATE
    assert nxt({**trained, "state": "evaluating", "hash": H}, has_checkpoint=True) == Do.EVALUATE  # cut short
    assert nxt({**trained, "state": "failed", "hash": H}, has_checkpoint=True) == Do.EVALUATE
    assert nxt(trained, has_checkpoint=False) == Do.TRAIN  # the trained weights are gone: train again


def test_an_interrupted_run_resumes_from_its_own_checkpoint():
    for state in (State.TRAINING, State.FAILED, State.EVALUATING):
        status = {"state": state, "hash": H, "train_hash": T, "tokens_done": 512}
        assert nxt(status, has_checkpoint=True) == Do.RESUME
        assert nxt(status, has_checkpoint=False) == Do.TRAIN  # killed before its first checkpoint
    then = next_action(
        {"state": "training", "tokens_done": 512}, hash=H, train_hash=T, has_checkpoint=True, tokens=1000
    )
    assert then.why == "interrupted at 512 of 1,000 tokens"


def test_a_status_without_train_hash_is_not_stale():
    assert nxt({"state": "training"}, has_checkpoint=True) == Do.RESUME  # written before train_hash existed


def test_a_checkpoint_that_holds_every_token_is_exported_and_evaluated_not_trained_again():
    killed_in_export = {"state": "training", "hash": H, "train_hash": T, "tokens_done": 768}
    then = next_action(killed_in_export, hash=H, train_hash=T, has_checkpoint=True, tokens=1000, checkpoint_at=1000)
    assert (
        then.do == Do.EVALUATE
        and then.why == "trained: its latest checkpoint holds all 1,000 tokens; export and evaluate"
    )
    assert nxt({}, has_checkpoint=True, checkpoint_at=1000) == Do.EVALUATE  # status.json deleted after training
    then = next_action({}, hash=H, train_hash=T, has_checkpoint=True, tokens=1000, checkpoint_at=512)
    assert then.do == Do.RESUME and then.why == "interrupted at 512 of 1,000 tokens"  # the checkpoint says where
    assert nxt({"state": "training", "train_hash": "t0"}, has_checkpoint=True, checkpoint_at=1000) == Do.STALE


def test_a_done_folder_with_damaged_outputs_recomputes_from_what_is_intact():
    done = {"state": "done", "hash": H, "train_hash": T, "trained": True}
    then = next_action(
        done, hash=H, train_hash=T, has_checkpoint=True, damaged={"heldout.json": "heldout.json: missing"}
    )
    assert then.do == Do.EVALUATE and then.why == "heldout.json: missing; recompute from model/"
    model = {"model": "model/model.safetensors: 5 bytes, 9 when written"}
    then = next_action(done, hash=H, train_hash=T, has_checkpoint=True, damaged=model)
    assert then.do == Do.EVALUATE and "export model/ again from the final checkpoint" in then.why
    assert nxt(done, has_checkpoint=False, damaged=model) == Do.TRAIN  # nothing left to export from
    assert nxt(done, has_checkpoint=True, damaged={}) == Do.SKIP
    start = next_action({"state": "done", "hash": H}, hash=H, damaged={"eval": "eval: missing"})
    assert start.do == Do.EVALUATE and start.why == "eval: missing; evaluate again"


def test_outputs_are_recorded_when_written_and_checked_before_a_skip(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"w" * 100)
    (tmp_path / "heldout.json").write_text("{}")
    status = Status(outputs=record_outputs(tmp_path, Status(), "model", "heldout.json"))
    assert set(status.outputs or {}) == {"model/weights.bin", "heldout.json"}
    assert status.outputs["model/weights.bin"].bytes == 100
    parts = ("model", "eval", "heldout.json")
    assert damaged_outputs(tmp_path, status, parts) == {"eval": "eval: missing"}  # never recorded, not there
    (tmp_path / "model" / "weights.bin").write_bytes(b"w" * 40)  # cut short
    (tmp_path / "heldout.json").write_text("[]")  # same size, other bytes
    damaged = damaged_outputs(tmp_path, status, parts)
    assert damaged["model"] == "model/weights.bin: 40 bytes, 100 when written"
    assert damaged["heldout.json"] == "heldout.json: changed since it was written (sha256 differs)"
    assert "heldout.json" not in damaged_outputs(tmp_path, status, parts, hash_limit=1)  # size only above the limit
    (tmp_path / "model" / "weights.bin").unlink()
    assert damaged_outputs(tmp_path, status, ("model",)) == {"model": "model/weights.bin: missing"}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "results.json").write_text("{}")
    assert damaged_outputs(tmp_path, status, ("eval",)) == {}  # unrecorded but there: trusted
    assert damaged_outputs(tmp_path, status, ("eval",), trust_unrecorded=False) == {
        "eval": "eval: not recorded in status.json"
    }
    kept = record_outputs(tmp_path, status, "eval")
    assert set(kept) == {"model/weights.bin", "heldout.json", "eval/results.json"}  # only eval's entries renewed


# ---- an evaluation-only job (the start checkpoint) -----------------------------------------


def test_the_start_evaluation_runs_once_per_hash():
    assert next_action({}, hash=H).do == Do.EVALUATE
    assert next_action({"state": "done", "hash": H}, hash=H).do == Do.SKIP
    assert next_action({"state": "failed", "hash": H}, hash=H).do == Do.EVALUATE
    assert next_action({"state": "done", "hash": H}, hash=H, holder="pid 1").do == Do.BUSY


def test_a_start_evaluated_for_another_checkpoint_is_evaluated_again():
    then = next_action({"state": "done", "hash": "h0"}, hash=H)
    assert then.do == Do.EVALUATE and then.why == "evaluated for hash h0, the plan now says h1"


# ---- what readers see, status files, the lock ----------------------------------------------


def test_results_state_marks_another_hash_stale():
    assert results_state(Status.model_validate({"state": "done", "hash": H}), H) == "done"
    assert results_state(Status.model_validate({"state": "done", "hash": "h0"}), H) == STALE
    assert results_state(Status.model_validate({"state": "done"}), H) == STALE  # done, but for no known plan
    assert results_state(Status.model_validate({"state": "pending"}), H) == "pending"
    assert results_state(Status.model_validate({"state": "training", "hash": H}), H) == "training"


def test_status_is_merged_and_written_whole(tmp_path):
    assert read_status(tmp_path) == Status(state=State.PENDING)
    write_status(tmp_path, State.TRAINING, hash=H, tokens_done=10)
    write_status(tmp_path, State.DONE, scores={"a": 0.5})
    status = read_status(tmp_path)
    assert status.state == "done" and status.hash == H and status.tokens_done == 10
    assert status.scores == {"a": 0.5} and isinstance(status.updated, float)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temp file left behind
    with pytest.raises(TypeError, match="no field tokens_seen"):  # a misspelt field fails where it is written
        write_status(tmp_path, State.DONE, tokens_seen=10)


def test_tokens_done_is_an_int_and_an_older_files_integral_float_still_reads(tmp_path):
    (tmp_path / "status.json").write_text('{"state": "training", "tokens_done": 512000.0}')
    status = read_status(tmp_path)
    assert status.tokens_done == 512000 and isinstance(status.tokens_done, int)
    write_status(tmp_path, State.TRAINING, tokens=1_024_000)
    assert '"tokens_done": 512000,' in (tmp_path / "status.json").read_text()  # written back as an int
    (tmp_path / "status.json").write_text('{"state": "training", "tokens_done": 512000.5}')
    with pytest.raises(StudyError, match="valid integer"):  # a fraction of a token is no count
        read_status(tmp_path)


def test_lock_stops_a_second_holder_and_is_released(tmp_path):
    with folder_lock(tmp_path):
        with pytest.raises(Busy, match=f"locked by pid {os.getpid()} on "):
            with folder_lock(tmp_path):
                pass
        assert "another runner is working on it" in lock_holder(tmp_path)
    assert lock_holder(tmp_path) is None
    with folder_lock(tmp_path):  # free again
        pass
