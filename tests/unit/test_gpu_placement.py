"""Each Horovod worker on its own GPU, and op determinism only where the ops allow it."""
import pytest

from rec_lib.training.worker import determinism_wanted, gpu_for_rank, place_on_gpu


def test_each_local_rank_gets_its_own_gpu():
    assert [gpu_for_rank(4, r) for r in range(4)] == [0, 1, 2, 3]
    assert [gpu_for_rank(2, r) for r in range(4)] == [0, 1, 0, 1]  # more workers than GPUs: shared in turn
    assert gpu_for_rank(0, 3) is None


@pytest.mark.parametrize("setting, on_gpu, wanted", [
    ("auto", False, True), ("auto", True, False),
    ("always", False, True), ("always", True, True),
    ("never", False, False), ("never", True, False),
])
def test_determinism_is_on_for_cpu_by_default_and_on_gpu_only_when_asked(setting, on_gpu, wanted):
    assert determinism_wanted(setting, on_gpu) is wanted


def test_a_misspelt_determinism_setting_is_refused():
    with pytest.raises(ValueError, match="train.deterministic must be one of"):
        determinism_wanted("yes", True)


class FakeDevice:
    def __init__(self, name):
        self.name = name


class FakeConfig:
    """tf.config's device calls, recorded."""

    def __init__(self, n_gpus):
        self.gpus = [FakeDevice(f"/physical_device:GPU:{i}") for i in range(n_gpus)]
        self.calls = []
        self.experimental = self

    def list_physical_devices(self, kind):
        assert kind == "GPU"
        return self.gpus

    def set_visible_devices(self, device, kind):
        self.calls.append(("visible", device.name, kind))

    def set_memory_growth(self, device, on):
        self.calls.append(("growth", device.name, on))


class FakeTF:
    def __init__(self, n_gpus):
        self.config = FakeConfig(n_gpus)


def test_a_worker_sees_only_its_gpu_and_grows_its_memory():
    tf = FakeTF(n_gpus=4)
    assert place_on_gpu(tf, local_rank=2) == "/physical_device:GPU:2"
    assert tf.config.calls == [("visible", "/physical_device:GPU:2", "GPU"), ("growth", "/physical_device:GPU:2", True)]
    cpu = FakeTF(n_gpus=0)
    assert place_on_gpu(cpu, local_rank=1) is None and cpu.config.calls == []
