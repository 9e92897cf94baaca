"""The GPU check (`make gpu-check`, `pytest -m gpu tests/gpu`): under ten minutes on one GPU.

Every module here is marked `gpu`, so the default run (`-m 'not slow and not gpu'`) never
collects it; and every test skips with the reason printed (`-rs`) where there is no CUDA.
"""

import pytest
import torch

NO_CUDA = (
    f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, "
    f"CUDA build {torch.version.cuda or 'none'})"
)


@pytest.fixture(autouse=True)
def cuda() -> torch.device:
    """The GPU the test runs on; every test in this folder skips without one."""
    if not torch.cuda.is_available():
        pytest.skip(NO_CUDA)
    return torch.device("cuda", torch.cuda.current_device())


@pytest.fixture
def fp32_matmuls():
    """True float32 references: TF32 (on by default for cuDNN convolutions) off meanwhile."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
