"""What the property test (``test_fuzz_rpcs.py``) found, one focused test each: every one ended the call with a
status or details a peer should never see."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.security.fuzz_grid import Grid, grid_in
from tests.slowness import scaled

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    yield from grid_in(tmp_path_factory.mktemp("found"))


def test_an_rpc_the_node_does_not_implement_is_unimplemented_in_one_line(grid: Grid) -> None:
    """grpc.health.v1's List reached the servicer's stand-in, which raised NotImplementedError: INTERNAL, logged
    as an error."""
    health = health_pb2_grpc.HealthStub(grid.peers["nobody"].chan)
    with pytest.raises(grpc.RpcError) as caught:
        health.List(health_pb2.HealthListRequest(), timeout=scaled(10))
    assert (caught.value.code(), caught.value.details()) == (
        Code.UNIMPLEMENTED,
        "Health.List is not implemented on this node",
    )
    assert "Health.List failed" not in grid.log()
