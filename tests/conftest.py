"""Shared fixtures: deterministic CPU torch, small thread count, a fresh data set cache."""
import pytest
import torch

from benchmark.data import registry as data


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP contention on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_data_cache():
    """The test starts and ends with an empty data set cache."""
    data.clear_cache()
    yield
    data.clear_cache()
