"""Without Dask (the frozen app leaves it out; a pip install without the extra lacks it), every way in says so in
one line that names the fix, instead of a traceback."""

from __future__ import annotations

import asyncio
import sys
from importlib import metadata

import grpc
import pytest

from noizylab_desktop.core.errors import DaskError
from noizylab_desktop.services.dask import versions
from noizylab_desktop.services.dask.client import DaskClient
from noizylab_desktop.services.dask.versions import NOT_IN_THIS_BUILD, local_versions, require_installed


class Local:
    """Just enough of a ``LocalClient`` for ``DaskClient``: the calls tested here fail before any RPC."""

    def __init__(self) -> None:
        self.channel = grpc.aio.insecure_channel("127.0.0.1:9")


def test_the_frozen_app_says_dask_is_not_in_this_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert local_versions().missing == NOT_IN_THIS_BUILD
    with pytest.raises(DaskError) as refused:
        require_installed()
    assert refused.value.message == NOT_IN_THIS_BUILD and "\n" not in NOT_IN_THIS_BUILD
    assert "not available in this build" in NOT_IN_THIS_BUILD and "pip install 'noizylab-desktop[dask]'" in (
        NOT_IN_THIS_BUILD
    )


def test_a_pip_install_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(versions.metadata, "version", absent)
    with pytest.raises(DaskError) as refused:
        require_installed()
    assert refused.value.message == (
        "dask and distributed are not installed: install it with `pip install 'noizylab-desktop[dask]'`"
    )


@pytest.mark.parametrize("frozen", [False, True])
def test_a_client_where_distributed_cannot_be_imported_gets_one_line(
    monkeypatch: pytest.MonkeyPatch, frozen: bool
) -> None:
    monkeypatch.setattr(sys, "frozen", frozen, raising=False)
    for name in [m for m in sys.modules if m == "distributed" or m.startswith("distributed.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not there: the import fails

    async def connect() -> None:
        await DaskClient(Local()).connect()  # type: ignore[arg-type]

    with pytest.raises(DaskError) as refused:
        asyncio.run(connect())
    expected = NOT_IN_THIS_BUILD if frozen else "distributed is not installed here: install it with"
    assert refused.value.message.startswith(expected)
