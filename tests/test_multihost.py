"""jhpo.multihost in one process: every helper is the plain local operation, and joining
a run fails clearly. Several processes: tests/runs/test_multihost.py."""

import socket
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PS

from jhpo import multihost


def population_sharding():
    return NamedSharding(Mesh(np.asarray(jax.devices()), ("population",)), PS("population"))


def test_put_lays_host_values_and_keys_over_the_devices():
    sharding = population_sharding()
    size = 2 * len(jax.devices())
    keys = jax.random.split(jax.random.key(3), size)
    tree = {"w": np.arange(size * 3, dtype=np.float32).reshape(size, 3), "keys": keys,
            "steps": jnp.arange(size)}
    placed = multihost.put(tree, sharding)
    for leaf in jax.tree.leaves(placed):
        assert leaf.sharding == sharding
    np.testing.assert_array_equal(placed["w"], tree["w"])
    np.testing.assert_array_equal(placed["steps"], np.arange(size))
    assert jax.dtypes.issubdtype(placed["keys"].dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(placed["keys"]), jax.random.key_data(keys))


def test_fetch_gives_numpy_arrays_and_keys_back():
    keys = jax.random.split(jax.random.key(1), len(jax.devices()))
    placed = multihost.put({"x": np.arange(len(jax.devices()), dtype=np.int32), "keys": keys},
                           population_sharding())
    fetched = multihost.fetch(placed)
    assert isinstance(fetched["x"], np.ndarray)
    np.testing.assert_array_equal(fetched["x"], np.arange(len(jax.devices())))
    np.testing.assert_array_equal(jax.random.key_data(fetched["keys"]), jax.random.key_data(keys))


def test_alone_process_0_computes_and_its_errors_are_its_own():
    assert multihost.is_writer()
    assert multihost.on_writer(lambda: (1, "a")) == (1, "a")
    with pytest.raises(ZeroDivisionError):
        multihost.on_writer(lambda: 1 / 0)
    assert multihost.allgather_json((1, float("nan")))[0][0] == 1
    assert np.isnan(multihost.allgather_json((1, float("nan")))[0][1])
    multihost.check_same("anything", np.arange(3))  # nothing to disagree with
    before = time.time()
    assert before <= multihost.shared_time() <= time.time()


def test_the_shared_clock_reads_the_time_alone():
    clock = multihost.SharedClock()
    first = clock.now()
    time.sleep(0.01)
    clock.tick()
    assert clock.now() > first


@pytest.mark.parametrize("timeout_s", [0, -1, float("nan"), "5"])
def test_initialize_refuses_a_timeout_that_is_no_positive_number(timeout_s):
    with pytest.raises(ValueError, match="timeout_s=.* must be a positive number of seconds"):
        multihost.initialize("localhost:1", 2, 1, timeout_s=timeout_s)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def test_an_unreachable_coordinator_is_an_error_naming_it_once_the_time_is_up():
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(multihost.CoordinatorUnreachable,
                       match=f"process 1: the coordinator at localhost:{port} could not be reached"):
        multihost.wait_for_port(f"localhost:{port}", time.monotonic() + 0.5, "process 1: the coordinator")
    assert 0.5 <= time.monotonic() - started < 5


def test_a_listening_coordinator_is_reached():
    with socket.socket() as server:
        server.bind(("localhost", 0))
        server.listen()
        started = time.monotonic()
        multihost.wait_for_port(f"localhost:{server.getsockname()[1]}", started + 5, "the coordinator")
        assert time.monotonic() - started < 1


@pytest.mark.parametrize("address", ["localhost", "localhost:port", ":1234"])
def test_a_coordinator_address_without_host_and_port_is_refused(address):
    with pytest.raises(ValueError, match="must be 'host:port'"):
        multihost.wait_for_port(address, time.monotonic() + 1, "the coordinator")
