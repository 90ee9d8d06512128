"""The ``[dask]`` table of a node's config, declared for ``parse_section``."""

from __future__ import annotations

from dataclasses import dataclass

from noizylab_desktop.core.settings_schema import section, setting


def _resource(value: str) -> bool:
    name, sep, amount = value.partition("=")
    try:
        return bool(sep and name.strip()) and float(amount) > 0
    except ValueError:
        return False


@section("dask")
@dataclass(frozen=True)
class DaskSettings:
    """Where the cluster's processes listen, what a worker offers, and how long the cluster's certificates live."""

    # "" listens where the grid does: grpc_host when it is one address, else the first advertised address (never
    # every interface unless written here).
    host: str = setting("")
    port: int = setting(0, low=0, high=65535, hint="0: a free port")
    nthreads: int = setting(0, low=0, hint="0: one per CPU")
    memory_fraction: float = setting(0.8, above=0, high=1)
    # Resources a worker advertises beside the ones found (GPU=N from NVML): "NAME=AMOUNT", e.g. a test's "GPU=1".
    resources: tuple[str, ...] = setting((), check=lambda items: all(_resource(i) for i in items),
                                         expect='"NAME=AMOUNT" items')  # fmt: skip
    cert_lifetime_h: float = setting(24.0, low=0.1, high=24 * 30, unit="hours")
    dashboard: bool = setting(False)  # on 127.0.0.1 only, when bokeh is installed
    start_timeout_s: float = setting(60.0, above=0, high=600, unit="seconds")

    def extra_resources(self) -> dict[str, float]:
        """``resources`` as a mapping."""
        found: dict[str, float] = {}
        for item in self.resources:
            name, _, amount = item.partition("=")
            found[name.strip()] = float(amount)
        return found
