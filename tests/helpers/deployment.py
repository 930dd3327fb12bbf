"""A real Airflow 3 deployment for the tests: its server processes, their outputs, its REST API, and its runs.

Used by test_deployment.py (LocalExecutor) and test_celery_deployment.py (CeleryExecutor with two workers).
Every wait is a bounded poll that fails with the tail of the relevant process's output, in which any secret the
emulator issued is blanked out first (and counted, so that a leak still shows).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers.processes import stop_groups

HELPER = Path(__file__).parent / "airflow_worker.py"


def helper(env: Mapping[str, str], *args: str) -> str:
    """Run one command of ``helpers/airflow_worker.py`` (put-connection, read-extra, ...) with ``env``; its stdout."""
    result = subprocess.run(
        [sys.executable, str(HELPER), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(HELPER.parent),
    )
    assert result.returncode == 0, f"airflow_worker.py {args[0]} failed:\n{redact(result.stderr[-3000:])}"
    return result.stdout


def redact(text: str) -> str:
    """``text`` with every secret the emulator issued blanked out; a note says how many (each one is a leak)."""
    from airflow_provider_confluence.testing import find_leaks

    leaked = find_leaks(text)
    for secret in leaked:
        text = text.replace(secret, "[EMULATOR SECRET]")
    return f"({len(leaked)} emulator secret(s) blanked out: a LEAK)\n{text}" if leaked else text


def tail(path: Path, size: int = 4000) -> str:
    """The last ``size`` characters of a file, redacted (see :func:`redact`)."""
    return redact(path.read_text(errors="replace")[-size:]) if path.exists() else "(no output)"


def events(log_text: str) -> list[dict[str, Any]]:
    """The structured lines of a task log file (the supervisor writes one JSON object per line)."""
    found = []
    for line in log_text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            found.append(event)
    return found


class Deployment:
    """Airflow server processes in one private AIRFLOW_HOME, their outputs, and the REST API of the API server.

    :param env: the environment of every process (a private ``AIRFLOW_HOME``, the database, the executor, ...).
    :param home: that ``AIRFLOW_HOME``; each process writes its output to ``<home>/<name>.out``.
    :param port: the API server's port on 127.0.0.1.
    """

    def __init__(self, env: dict[str, str], home: Path, port: int) -> None:
        self.env = env
        self.home = home
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.broker = f"{self.base}/confluence-oauth/token"
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        self._api_token: str | None = None

    def output(self, name: str) -> Path:
        return self.home / f"{name}.out"

    def start(self, name: str, *args: str, prefix: Sequence[str] = (), env: Mapping[str, str] | None = None) -> None:
        """Start ``[*prefix] python -m airflow *args`` in a session of its own, its output appended to its file.

        :param prefix: a command that runs the rest (``unshare --uts sh -c ...``, for a hostname of its own).
        :param env: variables added to the deployment's environment for this process only.
        """
        command = [*prefix, sys.executable, "-m", "airflow", *args]
        process_env = {**self.env, **(env or {})}
        self._commands[name] = (command, process_env)
        with open(self.output(name), "a") as out:
            self.procs[name] = subprocess.Popen(
                command,
                env=process_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(self.home),
                start_new_session=True,
            )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"airflow {name} exited with {proc.returncode}:\n{tail(self.output(name))}")

    def stop_process(self, name: str, timeout: float = 30.0) -> None:
        """Stop one process with its children (SIGTERM, then SIGKILL after ``timeout``)."""
        stop_groups([self.procs.pop(name)], timeout=timeout, kill_wait=10.0)

    def restart(self, name: str, timeout: float = 30.0) -> None:
        """Stop a process and start it again with the same command and environment."""
        command, process_env = self._commands[name]
        self.stop_process(name, timeout)
        with open(self.output(name), "a") as out:
            out.write(f"\n===== restarted by the test at {time.time():.3f} =====\n")
            out.flush()
            self.procs[name] = subprocess.Popen(
                command,
                env=process_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(self.home),
                start_new_session=True,
            )

    def stop(self, first: Iterable[str] = ("scheduler",)) -> None:
        """Stop everything: ``first`` (no new task starts), then the others at once, the API server last (running
        tasks and the triggerer still need it)."""
        for name in first:
            if name in self.procs:
                self.stop_process(name)
        others = [name for name in self.procs if name != "api-server"]
        stop_groups([self.procs.pop(name) for name in others], timeout=30.0, kill_wait=10.0)
        if "api-server" in self.procs:
            self.stop_process("api-server")

    def wait_for_output(self, name: str, text: str, timeout: float, *, offset: int = 0) -> None:
        """Until ``text`` appears in the output of process ``name`` after ``offset`` (bounded)."""
        deadline = time.monotonic() + timeout
        path = self.output(name)
        while True:
            self.check_alive()
            if path.exists():
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    if text in handle.read().decode(errors="replace"):
                        return
            if time.monotonic() > deadline:
                pytest.fail(f"airflow {name} did not print {text!r} in {timeout:.0f} s:\n{tail(path)}")
            time.sleep(0.5)

    def output_since(self, name: str, offset: int) -> str:
        with open(self.output(name), "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def wait_for_api_server(self, timeout: float) -> None:
        """Until the plugin's broker answers (an unsigned request gets a JSON 422) and a REST token is issued."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                if requests.post(self.broker, json={}, timeout=5).status_code == 422:
                    response = requests.get(f"{self.base}/auth/token", timeout=10)
                    if response.status_code in (200, 201):
                        self._api_token = response.json()["access_token"]
                        return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no API server with the token broker after {timeout:.0f} s:\n{tail(self.output('api-server'))}"
                )
            time.sleep(1.0)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._api_token}"}
        return requests.request(method, f"{self.base}/api/v2{path}", headers=headers, timeout=30, **kwargs)

    # -- DAGs and runs --------------------------------------------------------------------------------

    def wait_for_parsed_dag(self, dag_id: str, tasks: int, timeout: float) -> None:
        """Until the dag-processor has serialized the DAG with all its tasks (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            response = self.api("GET", f"/dags/{dag_id}/tasks")
            if response.status_code == 200 and response.json().get("total_entries") == tasks:
                return
            if time.monotonic() > deadline:
                errors = self.api("GET", "/importErrors").text
                pytest.fail(
                    f"the dag-processor did not parse {dag_id} in {timeout:.0f} s ({response.status_code}); "
                    f"import errors: {redact(errors[-2000:])}\n{tail(self.output('dag-processor'))}"
                )
            time.sleep(2.0)

    def trigger(self, dag_id: str, run_id: str) -> None:
        """Unpause the DAG and trigger a run of it through the REST API."""
        unpaused = self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert unpaused.status_code == 200 and unpaused.json()["is_paused"] is False, unpaused.text
        triggered = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
        assert triggered.status_code == 200, triggered.text

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances, as the REST API shows them."""
        response = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 200})
        assert response.status_code == 200, response.text
        return list(response.json()["task_instances"])

    def wait_for_tasks(
        self,
        dag_id: str,
        run_id: str,
        done: Callable[[list[dict[str, Any]]], bool],
        what: str,
        timeout: float,
        logs_of: Sequence[str] = ("scheduler",),
    ) -> list[dict[str, Any]]:
        """Until ``done(task instances)`` holds (bounded); fails saying ``what`` was awaited, with output tails."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            instances = self.task_instances(dag_id, run_id)
            if done(instances):
                return instances
            if time.monotonic() > deadline:
                states = {ti["task_id"]: ti["state"] for ti in instances}
                tails = "\n".join(f"--- {name}\n{tail(self.output(name), 3000)}" for name in logs_of)
                pytest.fail(f"{what}: not within {timeout:.0f} s; tasks of {run_id}: {states}\n{tails}")
            time.sleep(1.0)

    def wait_for_run(
        self, dag_id: str, run_id: str, timeout: float, logs_of: Sequence[str] = ("scheduler",)
    ) -> tuple[str, dict[str, str]]:
        """Until the run is finished (bounded): its state and the state of each task."""
        deadline = time.monotonic() + timeout
        state = None
        while True:
            self.check_alive()
            response = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            assert response.status_code == 200, response.text
            state = response.json()["state"]
            if state in ("success", "failed") or time.monotonic() > deadline:
                break
            time.sleep(2.0)
        tasks = {ti["task_id"]: str(ti["state"]) for ti in self.task_instances(dag_id, run_id)}
        if state not in ("success", "failed"):
            tails = "\n".join(f"--- {name}\n{tail(self.output(name), 3000)}" for name in logs_of)
            pytest.fail(f"the run {run_id} did not finish in {timeout:.0f} s (state {state}); tasks: {tasks}\n{tails}")
        return str(state), tasks

    def task_logs(self, dag_id: str, run_id: str, *, triggers: bool = True) -> dict[str, str]:
        """The task log files of a run, by task id (with the lines the triggerer wrote, unless ``triggers`` is
        False: it writes them to ``attempt=N.log.trigger.<job id>.log`` beside the task's own file)."""
        logs: dict[str, str] = {}
        for path in sorted((self.home / "logs").rglob("*.log")):
            parts = path.parts
            ours = f"dag_id={dag_id}" in parts and f"run_id={run_id}" in parts
            if ours and (triggers or ".trigger." not in path.name):
                task = next(p.split("=", 1)[1] for p in parts if p.startswith("task_id="))
                logs[task] = logs.get(task, "") + path.read_text(errors="replace")
        return logs

    def trigger_logs(self, dag_id: str, run_id: str) -> dict[str, str]:
        """What the triggerer wrote for the run's deferred tasks, by task id."""
        logs: dict[str, str] = {}
        for path in sorted((self.home / "logs").rglob("*.log.trigger.*")):
            parts = path.parts
            if f"dag_id={dag_id}" in parts and f"run_id={run_id}" in parts:
                task = next(p.split("=", 1)[1] for p in parts if p.startswith("task_id="))
                logs[task] = logs.get(task, "") + path.read_text(errors="replace")
        return logs

    def texts_to_scan(self) -> dict[str, str]:
        """Every log file under the home's logs folder and the output of every process, by where it is."""
        texts = {
            str(p.relative_to(self.home)): p.read_text(errors="replace")
            for p in (self.home / "logs").rglob("*")
            if p.is_file()
        }
        texts.update({f"{p.stem} output": p.read_text(errors="replace") for p in self.home.glob("*.out")})
        return texts
