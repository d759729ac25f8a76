import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small dense problems: one intra-op thread avoids thread-pool contention on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
