"""Run a dump or restore Job's pod here: each container's bash as its own process, all at once, sharing a temp dir as
the pod's emptyDir, the Job's Secret as files, ``secretKeyRef`` read from a dict, each with its termination log."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Ran:
    """One container that ran: its exit code, output and termination message."""

    returncode: int
    stdout: str
    stderr: str
    message: str


def run_pod(
    job: dict[str, Any],
    secret: dict[str, Any],
    tmp: Path,
    *,
    app_secrets: dict[str, dict[str, str]],
    path: str = "",
    env: dict[str, str] | None = None,
    container_env: dict[str, dict[str, str]] | None = None,
    timeout_s: int = 300,
) -> dict[str, Ran]:
    """Every container of ``job``'s pod run to its end, by container name; ``env`` overrides the containers' own
    (``LIFEBOAT_HOST`` pointed at a server here, say), ``container_env`` one container's, and ``path`` goes first on
    PATH (the server's tools)."""
    pod = job["spec"]["template"]["spec"]
    dirs: dict[str, Path] = {}
    for volume in pod["volumes"]:
        where = tmp / f"volume-{volume['name']}"
        where.mkdir(parents=True, exist_ok=True)
        dirs[volume["name"]] = where
        if "secret" in volume:
            for name, text in secret["stringData"].items():
                (where / name).write_text(text)
    started: dict[str, subprocess.Popen[bytes]] = {}
    for container in pod["containers"]:
        mounts = {m["mountPath"]: str(dirs[m["name"]]) for m in container.get("volumeMounts", ())}
        run_env = {"PATH": f"{path}:{os.environ['PATH']}" if path else os.environ["PATH"]}
        for entry in container["env"]:
            if "value" in entry:
                value = entry["value"]
                for mount, local in mounts.items():  # a path inside the pod is one of this test's directories
                    if value == mount or value.startswith(mount + "/"):
                        value = local + value[len(mount) :]
                run_env[entry["name"]] = value
            else:
                ref = entry["valueFrom"]["secretKeyRef"]
                run_env[entry["name"]] = app_secrets[ref["name"]][ref["key"]]
        log = tmp / f"termination-{container['name']}"
        run_env.update(env or {}, **(container_env or {}).get(container["name"], {}))
        run_env["LIFEBOAT_TERMINATION_LOG"] = str(log)
        # Files, not pipes: a container that writes much while this waits for another never blocks on it.
        out, err = tmp / f"stdout-{container['name']}", tmp / f"stderr-{container['name']}"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(container["command"], env=run_env, stdout=stdout, stderr=stderr)
        started[container["name"]] = process
    ran: dict[str, Ran] = {}
    try:
        for name, process in started.items():
            process.wait(timeout=timeout_s)
            log = tmp / f"termination-{name}"
            message = log.read_text() if log.exists() else ""
            out_text = (tmp / f"stdout-{name}").read_text()
            ran[name] = Ran(process.returncode, out_text, (tmp / f"stderr-{name}").read_text(), message)
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
    return ran
