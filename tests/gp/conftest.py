import jax
import pytest


@pytest.fixture(autouse=True)
def float64():
    """The GP tests compare against float64 references."""
    with jax.enable_x64(True):
        yield
