"""One torch thread in these tests: on a loaded machine torch's thread pool spins against the
other processes' and a tiny model's forward takes ten times longer."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
