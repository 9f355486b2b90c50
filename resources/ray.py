"""Ray for per-scene fan-out: a local cluster on loopback by default, or an existing cluster by address."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from dagster_ray import LocalRay
from pydantic import Field, model_validator

# Worker processes run numpy/Open3D/OpenCV code one task per core: multithreaded BLAS, OpenMP or OpenCV's own thread
# pool (OPENCV_FOR_THREADS_NUM) inside each task only oversubscribes the cores the other tasks are using.
# A scene allocates and frees buffers of 1-4 MiB per frame (decoded images, projections); by default glibc maps
# many of them with mmap and returns them to the kernel on free, so each frame faults its pages in afresh (~13,000
# page faults a scene). The workers' malloc instead serves blocks under 64 MiB from its heap and keeps up to
# 256 MiB of freed heap for the next frame and scene (~800 faults a scene); peak RSS is unchanged.
GIB = 2**30
WORKER_MALLOC = "glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=268435456"
WORKER_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENCV_FOR_THREADS_NUM": "1",
    "EGL_PLATFORM": "surfaceless",
    "GLIBC_TUNABLES": WORKER_MALLOC,
}


class SceneRay(LocalRay):
    """Ray for the per-scene assets: dagster-ray's ``LocalRay`` with an address, local defaults and worker env.

    With an empty ``address`` ``ray.init`` starts a local Ray bound to 127.0.0.1 with ``num_cpus`` workers, no
    dashboard, a bounded object store and ``temp_dir``, passed to ``ray.init`` through ``ray_init_options``;
    loopback binding also needs ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in the environment (``resources.environment``).
    With an address (``ray://head:10001`` or ``auto``) it joins that cluster. Workers get ``WORKER_ENV`` either way.
    """

    address: str = Field(default="", description="Existing Ray cluster (ray://host:port or 'auto'); empty = local.")
    num_cpus: int = Field(default=2, description="CPUs of the local Ray (ignored for an existing cluster).")
    object_store_gib: float = Field(default=1.0, description="Object store of the local Ray, GiB.")
    temp_dir: str = Field(default="/tmp/gpt4scene-ray", description="Session files of the local Ray (short path).")

    @model_validator(mode="before")
    @classmethod
    def _local_ray_init_options(cls, data: Any) -> Any:
        """A local Ray (no address) gets this resource's local settings as ``ray.init`` options, over any given in
        ``ray_init_options``. An address given as an ``EnvVar`` is resolved, and the resource built again, at run start.
        """
        if not isinstance(data, dict) or data.get("address"):
            return data
        value = {name: data.get(name, info.default) for name, info in cls.model_fields.items()}
        local = {
            "num_cpus": value["num_cpus"],
            "include_dashboard": False,
            "_temp_dir": value["temp_dir"],
            "object_store_memory": int(value["object_store_gib"] * GIB),
        }
        return {**data, "ray_init_options": {**(data.get("ray_init_options") or {}), **local}}

    @property
    def host(self) -> str:
        return (urlparse(self.address).hostname or "127.0.0.1") if self.address else "127.0.0.1"

    @property
    def ray_address(self) -> str | None:  # type: ignore[override]
        return self.address or None

    @property
    def name(self) -> str:
        return f"Ray({self.address})" if self.address else "LocalRay"

    def get_env_vars_to_inject(self) -> dict[str, str]:
        return {**super().get_env_vars_to_inject(), **WORKER_ENV}
