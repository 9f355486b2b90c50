"""The project's environment defaults, stated once.

``LOCATION_ENV`` holds what the code location reads through ``dg.EnvVar`` (``pipelines/definitions.py``); ``.env``
is generated from it (``python -m resources.environment > .env``; a test keeps them equal) because ``dagster dev``
run from the project folder loads that file. ``PROCESS_ENV`` holds what every local run needs besides: the Dagster
home, offline Hugging Face, Ray on loopback, headless Open3D. Paths are relative to the project folder, and
``{NAME}`` refers to another variable. ``apply_defaults`` (``gpt4scene``) sets the unset ones, paths made absolute;
``python -m resources.environment COMMAND...`` runs a command with ``PROCESS_ENV`` (the Makefile's tests).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # never download a model or dataset
LOCATION_ENV = {
    "GPT4SCENE_ROOT": "data",
    "GPT4SCENE_RAW_ROOT": "{GPT4SCENE_ROOT}/raw",
    "GPT4SCENE_SCANS_ROOT": "",  # empty: <raw root>/scans
    "GPT4SCENE_RAY_ADDRESS": "",  # empty: local Ray
    "GPT4SCENE_BASE_MODEL": "",  # empty: the tiny random Qwen2-VL under <root>/models/base
    "GPT4SCENE_TRAIN_BACKEND": "local",  # local | ray | k8s (resources/training.py)
    "GPT4SCENE_TRAIN_LAUNCHER": "torchrun",  # torchrun | deepspeed
    "GPT4SCENE_TRAIN_RAY_ADDRESS": "",  # Ray dashboard address for the ray backend
}
PROCESS_ENV = {
    "DAGSTER_HOME": "dagster_home",
    "TORCH_EXTENSIONS_DIR": ".torch_extensions",
    **OFFLINE_ENV,
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep local Ray on 127.0.0.1
    "RAY_AUTH_MODE": "disabled",
    "EGL_PLATFORM": "surfaceless",  # Open3D offscreen rendering without a display
}
PATH_VARIABLES = ("GPT4SCENE_ROOT", "DAGSTER_HOME", "TORCH_EXTENSIONS_DIR")
# Set (postgresql://user:password@host:port/db), the Dagster instance keeps its runs, event log and schedules in
# that PostgreSQL instead of SQLite files under the Dagster home: see postgres_home. SQLAlchemy 2.1 reads a plain
# postgresql:// URL as psycopg 3; dagster-postgres brings psycopg2, so apply_defaults names that driver.
PG_URL_VARIABLE = "GPT4SCENE_PG_URL"
PG_DRIVER_SCHEME = "postgresql+psycopg2://"
_PG_CONFIG = {"postgres_url": {"env": PG_URL_VARIABLE}}
# Runs and schedules on dagster-postgres' storages; the event log on its pooled subclass (resources/dagster_storage.py).
POSTGRES_STORAGE = {
    "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": _PG_CONFIG},
    "event_log_storage": {
        "module": "resources.dagster_storage",
        "class": "PooledPostgresEventLogStorage",
        "config": _PG_CONFIG,
    },
    "schedule_storage": {
        "module": "dagster_postgres.schedule_storage",
        "class": "PostgresScheduleStorage",
        "config": _PG_CONFIG,
    },
}
_STORAGE_KEYS = ("storage", *POSTGRES_STORAGE)


def apply_defaults(root: str | None = None, location: bool = True) -> None:
    """Set every unset variable of ``PROCESS_ENV`` and (``location``) ``LOCATION_ENV`` to its default, paths absolute
    under the project folder; ``root`` replaces ``GPT4SCENE_ROOT``. Creates the Dagster home; with
    ``GPT4SCENE_PG_URL`` set, ``DAGSTER_HOME`` becomes its PostgreSQL twin (``postgres_home``)."""
    if root:
        os.environ["GPT4SCENE_ROOT"] = str(Path(root).resolve())
    for name, value in {**PROCESS_ENV, **(LOCATION_ENV if location else {})}.items():
        value = str(PROJECT_DIR / value) if name in PATH_VARIABLES else value.format_map(os.environ)
        os.environ.setdefault(name, value)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    if os.environ.get(PG_URL_VARIABLE):
        for scheme in ("postgresql://", "postgres://"):
            if os.environ[PG_URL_VARIABLE].startswith(scheme):
                os.environ[PG_URL_VARIABLE] = PG_DRIVER_SCHEME + os.environ[PG_URL_VARIABLE][len(scheme) :]
        os.environ["DAGSTER_HOME"] = str(postgres_home(Path(os.environ["DAGSTER_HOME"])))


def postgres_home(home: Path) -> Path:
    """The Dagster home to use with ``GPT4SCENE_PG_URL`` set: ``home`` itself when its ``dagster.yaml`` already
    chooses a storage, else ``home/postgres``, whose ``dagster.yaml`` is ``home``'s (run queue, pools, retries,
    monitoring) with runs, event log and schedules on PostgreSQL, the URL read from the environment when the
    instance loads. That file is derived from ``home``'s every time, so the two never drift apart."""
    import yaml

    base = home / "dagster.yaml"
    config = (yaml.safe_load(base.read_text()) if base.is_file() else None) or {}
    if any(key in config for key in _STORAGE_KEYS):
        return home
    target = home / "postgres"
    target.mkdir(exist_ok=True)
    text = f"# Generated from {base} by resources/environment.py: the same instance on ${PG_URL_VARIABLE}.\n"
    text += yaml.safe_dump({**config, **POSTGRES_STORAGE}, sort_keys=False)
    if not (target / "dagster.yaml").is_file() or (target / "dagster.yaml").read_text() != text:
        (target / "dagster.yaml").write_text(text)
    return target


def dotenv_text() -> str:
    """The ``.env`` file: ``LOCATION_ENV`` with relative paths, as ``dagster dev`` from the project folder reads it."""
    lines = [
        "# Generated from resources/environment.py (python -m resources.environment > .env): loaded by `dagster dev`",
        "# from the project folder. `gpt4scene` sets the same defaults as absolute paths.",
    ]
    lines += [f"{name}={value.format_map(LOCATION_ENV)}" for name, value in LOCATION_ENV.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 1:
        sys.stdout.write(dotenv_text())
    else:
        apply_defaults(location=False)
        os.execvp(sys.argv[1], sys.argv[1:])
