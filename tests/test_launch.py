"""How concurrent jobs share a machine: threads and GPUs per slot (ablate.run.launch.slot_environment)."""

from __future__ import annotations

import pytest

from ablate.errors import AblateError
from ablate.run.launch import available_cores, slot_environment


def test_one_job_at_a_time_gets_every_core_and_no_device_pinning():
    assert slot_environment(0, 1, 1, {}) == {"OMP_NUM_THREADS": str(available_cores())}
    assert slot_environment(0, 1, 8, {"CUDA_VISIBLE_DEVICES": "3"}) == {"OMP_NUM_THREADS": str(available_cores())}


def test_concurrent_jobs_split_the_cores_unless_the_user_set_threads():
    assert slot_environment(1, 2, 1, {})["OMP_NUM_THREADS"] == str(max(1, available_cores() // 2))
    assert slot_environment(1, 64, 1, {})["OMP_NUM_THREADS"] == "1"
    assert slot_environment(1, 2, 1, {"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"] == "3"


def test_each_slot_sees_its_own_gpus():
    assert [slot_environment(s, 4, 1, {})["CUDA_VISIBLE_DEVICES"] for s in range(4)] == ["0", "1", "2", "3"]
    visible = {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}
    assert [slot_environment(s, 2, 2, visible)["CUDA_VISIBLE_DEVICES"] for s in range(2)] == ["4,5", "6,7"]


def test_too_few_visible_gpus_is_a_user_error():
    with pytest.raises(AblateError, match="--parallel 3 with --gpus 2 needs 6 GPUs, CUDA_VISIBLE_DEVICES lists 4"):
        slot_environment(0, 3, 2, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
