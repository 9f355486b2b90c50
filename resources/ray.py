"""Ray for per-scene fan-out: a local cluster on loopback by default, or an existing cluster by address."""

from __future__ import annotations

from urllib.parse import urlparse

from dagster_ray import RayResource
from pydantic import Field

# Worker processes run numpy/Open3D/OpenCV code one task per core: multithreaded BLAS, OpenMP or OpenCV's own thread
# pool (OPENCV_FOR_THREADS_NUM) inside each task only oversubscribes the cores the other tasks are using.
# A scene allocates and frees buffers of 1-4 MiB per frame (decoded images, projections); by default glibc maps
# many of them with mmap and returns them to the kernel on free, so each frame faults its pages in afresh (~13,000
# page faults a scene). The workers' malloc instead serves blocks under 64 MiB from its heap and keeps up to
# 256 MiB of freed heap for the next frame and scene (~800 faults a scene); peak RSS is unchanged.
WORKER_MALLOC = "glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=268435456"
WORKER_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENCV_FOR_THREADS_NUM": "1",
    "EGL_PLATFORM": "surfaceless",
    "GLIBC_TUNABLES": WORKER_MALLOC,
}


class SceneRay(RayResource):
    """Ray for the per-scene assets.

    With an empty ``address`` it starts a local Ray (``num_cpus`` workers, no dashboard, bounded object store) bound
    to 127.0.0.1 — loopback binding also needs ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in the environment, which the
    CLI and Makefile set (STACK.md §4). With an address (``ray://head:10001`` or ``auto``) it joins that cluster.
    """

    address: str = Field(default="", description="Existing Ray cluster (ray://host:port or 'auto'); empty = local.")
    num_cpus: int = Field(default=2, description="CPUs of the local Ray (ignored for an existing cluster).")
    object_store_gib: float = Field(default=1.0, description="Object store of the local Ray, GiB.")
    temp_dir: str = Field(default="/tmp/gpt4scene-ray", description="Session files of the local Ray (short path).")

    @property
    def host(self) -> str:
        return urlparse(self.address).hostname or "127.0.0.1" if self.address else "127.0.0.1"

    @property
    def ray_address(self) -> str | None:  # type: ignore[override]
        return self.address or None

    @property
    def name(self) -> str:
        return f"Ray({self.address})" if self.address else "LocalRay"

    @property
    def created(self) -> bool:
        return True

    @property
    def ready(self) -> bool:
        return True

    def get_env_vars_to_inject(self) -> dict[str, str]:
        return {**super().get_env_vars_to_inject(), **WORKER_ENV}

    def connect(self, context):  # type: ignore[override]
        import ray

        options = dict(self.ray_init_options)
        if not self.address:
            options = {
                "num_cpus": self.num_cpus,
                "include_dashboard": False,
                "_temp_dir": self.temp_dir,
                "object_store_memory": int(self.object_store_gib * 2**30),
                **options,
            }
        runtime_env = dict(options.pop("runtime_env", {}))
        runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **self.get_env_vars_to_inject()}
        self._context = ray.init(address=self.ray_address, runtime_env=runtime_env, **options)
        return self._context
