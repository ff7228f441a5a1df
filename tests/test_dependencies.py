"""Dependency installation: real uv and pip against wheels built here, apt argv and validation."""

from __future__ import annotations

import functools
import http.server
import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from opentelemetry._logs import SeverityNumber
from packaging.requirements import Requirement

from otel_flash import DependencyError, FlashConfig, RemoteExecutor
from otel_flash.dependencies import installer as dependencies_module
from otel_flash.dependencies.commands import (
    PythonInstaller,
    apt_install_argv,
    apt_unavailable_reason,
    apt_update_argv,
    choose_python_installer,
)
from otel_flash.dependencies.installer import DependencyInstaller
from otel_flash.dependencies.output import OutputLevels
from otel_flash.dependencies.requirements import check_system_packages, parse_requirements, unsatisfied
from otel_flash.redaction import redact_urls
from otel_flash.testing import TelemetryCapture
from tests.requests import function_request, stdout_lines
from tests.wheels import build_hanging_sdist, build_wheel

IMPORTER = """
import logging

def use(module_name):
    module = __import__(module_name)
    print(f"imported {module_name} {module.VERSION}")
    return module.VERSION
"""
REFUSED = [
    "--index-url=https://evil.example/simple",
    "--extra-index-url",
    "-r requirements.txt",
    "-e .",
    "",
    "   ",
    "numpy; rm -rf /",
    "numpy && curl evil.example",
    "numpy | sh",
    "pkg`id`",
    "$(id)",
    "pkg\nother",
    "./local/path",
]


def _executor(telemetry: TelemetryCapture, **settings: Any) -> RemoteExecutor:
    return RemoteExecutor(
        FlashConfig(**settings),
        tracer_provider=telemetry.tracer_provider,
        logger_provider=telemetry.logger_provider,
    )


def _offline(wheels: Path, target: Path, installer: str = "uv", **extra: Any) -> dict[str, Any]:
    """Settings installing into ``target`` from ``wheels`` only."""
    options = ("--no-index", "--find-links", str(wheels))
    return {"installer": installer, "install_target": str(target), "install_options": options, **extra}


def _use(module: str, *deps: str) -> dict[str, Any]:
    return {**function_request(IMPORTER, "use", module), "dependencies": list(deps)}


def _messages(stdout: str | None) -> list[str]:
    """Stdout lines as ``LEVEL | message`` (timestamps dropped), print lines as they are."""
    return [line.split(" | ", 1)[1] if " | " in line else line for line in stdout_lines(stdout)]


def _canary(directory: Path) -> tuple[str, ...]:
    """An installer command that only records that it ran, where, and with which arguments."""
    script = directory / "canary-installer"
    script.write_text(
        f'#!/bin/sh\npwd > "{directory}/cwd"\necho "$@" > "{directory}/argv"\necho canary ran\n'
    )
    script.chmod(0o755)
    return (str(script),)


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_installs_into_target_then_function_imports_it(
    telemetry: TelemetryCapture, tmp_path: Path, installer: str
) -> None:
    """Installer lines stream into stdout at the default level, in order, before the function's output."""
    name = f"flashdemo-{installer}-into-target"
    module = name.replace("-", "_")
    build_wheel(tmp_path / "wheels", name, "1.0")
    with _executor(telemetry, **_offline(tmp_path / "wheels", tmp_path / "target", installer)) as executor:
        response = executor.execute_sync(_use(module, f"{name}==1.0"))
    assert response.success, response.error
    assert response.json_result == "1.0"
    assert (tmp_path / "target" / f"{module}.py").is_file()
    lines = _messages(response.stdout)
    assert lines[0] == f"INFO | installing {name}==1.0 with {installer}"
    assert lines[-1] == f"imported {module} 1.0"
    installer_lines = lines[1:-1]
    if installer == "uv":  # uv writes its progress to stderr, and it is still progress: INFO
        assert f"INFO |  + {name}==1.0" in installer_lines
    else:
        assert f"INFO | Successfully installed {name}-1.0" in installer_lines
    span = telemetry.span("flash.dependencies.python")
    assert span.attributes is not None
    assert span.attributes["flash.dependencies.installer"] == installer
    assert span.attributes["flash.dependencies.requirements"] == (f"{name}==1.0",)
    assert span.attributes["flash.dependencies.exit_code"] == 0
    assert "flash.dependencies.skipped" not in span.attributes


def test_target_is_importable_only_while_the_executor_is_open(
    telemetry: TelemetryCapture, tmp_path: Path
) -> None:
    """install_target goes to the front of sys.path once, and leaves with the executor."""
    target = str((tmp_path / "target").resolve())
    with _executor(telemetry, install_target=target), _executor(telemetry, install_target=target):
        assert sys.path.count(target) == 1
        assert sys.path[0] == target
    assert target not in sys.path


@pytest.fixture(scope="session")
def throwaway_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no pip) that sees this suite's packages after its own site-packages."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(own, "otel_flash_suite.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_installs_into_the_running_interpreter(throwaway_venv: Path, tmp_path: Path, installer: str) -> None:
    """Without a target, packages go into the interpreter that runs the function (a throwaway venv here)."""
    name = f"flashdemo-{installer}-interpreter"
    module = name.replace("-", "_")
    build_wheel(tmp_path / "wheels", name, "2.0")
    script = textwrap.dedent(
        f"""
        import json, sys
        from otel_flash import FlashConfig, RemoteExecutor
        options = ("--no-index", "--find-links", sys.argv[1])
        config = FlashConfig(installer={installer!r}, install_options=options)
        request = json.loads(sys.argv[2])
        with RemoteExecutor(config) as executor:
            print(executor.execute_sync(request).model_dump_json())
        """
    )
    request = json.dumps(_use(module, name))
    run = subprocess.run(
        [str(throwaway_venv), "-c", script, str(tmp_path / "wheels"), request],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    )
    response = json.loads(run.stdout.strip().splitlines()[-1])
    assert response["success"], response["error"]
    assert response["json_result"] == "2.0"
    installed = subprocess.run(
        [str(throwaway_venv), "-c", f"import {module}; print({module}.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert installed.startswith(str(throwaway_venv.parent.parent))
    assert f"INFO | installing {name} with {installer}" in response["stdout"]


@pytest.mark.parametrize("entry", REFUSED)
def test_refused_entries_start_no_process(telemetry: TelemetryCapture, tmp_path: Path, entry: str) -> None:
    """An option, a path, shell syntax or an empty string is refused by name before any installer runs."""
    settings = {
        "installer": "uv",
        "install_target": str(tmp_path / "t"),
        "installer_command": _canary(tmp_path),
    }
    with _executor(telemetry, **settings) as executor:
        response = executor.execute_sync(_use("json", "six", entry))
    assert not response.success
    assert response.error is not None
    assert response.error.startswith(f"refused Python dependency {entry!r}")
    assert not (tmp_path / "argv").exists()
    span = telemetry.span("flash.dependencies.python")
    assert span.attributes is not None
    assert "flash.dependencies.exit_code" not in span.attributes


def _marker_package(root: Path) -> tuple[Path, Path]:
    """A local package whose setup.py writes a marker file when anything builds it."""
    package, marker = root / "markerpkg", root / "setup-ran"
    package.mkdir()
    (package / "setup.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from setuptools import setup\nsetup(name='markerpkg', version='1.0')\n"
    )
    return package, marker


@pytest.mark.parametrize("form", ["file-url", "FILE-url", "absolute-path", "relative-path", "git-file-url"])
def test_local_paths_and_vcs_urls_are_refused_before_any_process(
    telemetry: TelemetryCapture, tmp_path: Path, form: str
) -> None:
    """A dependency naming a local directory or a VCS URL is refused by name; its setup.py never runs."""
    package, marker = _marker_package(tmp_path)
    entry = {
        "file-url": f"markerpkg @ {package.as_uri()}",
        "FILE-url": f"markerpkg @ FILE://{package}",
        "absolute-path": f"markerpkg @ {package}",
        "relative-path": "markerpkg @ ./markerpkg",
        "git-file-url": f"markerpkg @ git+{package.as_uri()}",
    }[form]
    with _executor(telemetry, install_target=str(tmp_path / "t")) as executor:
        response = executor.execute_sync(_use("json", entry))
    assert not response.success
    assert response.error is not None
    assert response.error.startswith(f"refused Python dependency {entry!r}: only http and https URLs")
    assert not marker.exists()
    assert executor.execute_sync(function_request("def f():\n    return 1\n", "f")).success


def test_canary_installer_runs_for_valid_entries_in_the_workspace(
    telemetry: TelemetryCapture, tmp_path: Path
) -> None:
    """The same canary runs for valid requirements (so its silence means something), in the workspace."""
    settings = {
        "installer": "uv",
        "install_target": str(tmp_path / "t"),
        "installer_command": _canary(tmp_path),
        "install_options": ("--no-index",),
    }
    request = {
        **function_request("def f():\n    return 1\n", "f"),
        "dependencies": ["flashdemo-canary[x]>=1"],
    }
    with _executor(telemetry, **settings) as executor:
        response = executor.execute_sync(request)
    assert response.success, response.error
    target = (tmp_path / "t").resolve()
    assert (tmp_path / "argv").read_text().split() == [
        "pip", "install", "--python", sys.executable, "--no-progress", "--color", "never",
        "--target", str(target), "--no-index", "flashdemo-canary[x]>=1",
    ]  # fmt: skip
    assert "INFO | canary ran" in _messages(response.stdout)
    workspace = telemetry.span("flash.workspace.setup").attributes or {}
    assert (tmp_path / "cwd").read_text().strip() == workspace["flash.workspace.path"]


@pytest.fixture
def wheel_server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A real HTTP server on 127.0.0.1 serving ``tmp_path/served`` (it ignores credentials)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield served, server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


def test_credentials_in_urls_never_leave(
    telemetry: TelemetryCapture, tmp_path: Path, wheel_server: tuple[Path, int]
) -> None:
    """A token in a requirement URL is shown as *** in stdout, span attributes and exported logs."""
    served, port = wheel_server
    wheel = build_wheel(served, "flashdemo-private", "1.0")
    entry = f"flashdemo-private @ http://alice:s3cr3t-t0ken@127.0.0.1:{port}/{wheel.name}"
    with _executor(telemetry, installer="uv", install_target=str(tmp_path / "t")) as executor:
        response = executor.execute_sync(_use("flashdemo_private", entry))
    assert response.success, response.error
    shown = f"flashdemo-private @ http://***@127.0.0.1:{port}/{wheel.name}"
    assert f"INFO | installing {shown} with uv" in _messages(response.stdout)
    span = telemetry.span("flash.dependencies.python")
    assert span.attributes is not None
    assert span.attributes["flash.dependencies.requirements"] == (shown,)
    exported = [str(span.attributes) + str(span.events) for span in telemetry.spans()]
    exported += [str(r.log_record.body) + str(r.log_record.attributes) for r in telemetry.log_records()]
    assert "s3cr3t" not in response.model_dump_json()
    assert not [text for text in exported if "s3cr3t" in text]


def test_refused_entry_with_credentials_is_named_redacted() -> None:
    """Even the refusal message shows a refused entry's URL credentials as ***."""
    with pytest.raises(DependencyError) as caught:
        parse_requirements(["pkg @ https://bob:hunter2@host/p.whl | sh"])
    assert "hunter2" not in str(caught.value)
    assert "https://***@host/p.whl" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:token@host/x", "https://***@host/x"),
        ("git+https://ghp_abc@github.com/o/r", "git+https://***@github.com/o/r"),
        ("see http://a:b@h1/ and http://c@h2/", "see http://***@h1/ and http://***@h2/"),
        ("user@example.com and https://host/path@v1", "user@example.com and https://host/path@v1"),
        ("no urls here", "no urls here"),
    ],
)
def test_redact_urls(text: str, shown: str) -> None:
    """The whole user information of a URL becomes ***; e-mail addresses and paths with @ stay."""
    assert redact_urls(text) == shown


def test_failed_install_names_package_and_exit_code(telemetry: TelemetryCapture, tmp_path: Path) -> None:
    """A missing package fails the request with its name, the exit code, and uv's output in stdout."""
    (tmp_path / "wheels").mkdir()
    with _executor(telemetry, **_offline(tmp_path / "wheels", tmp_path / "t")) as executor:
        response = executor.execute_sync(_use("json", "flashdemo-does-not-exist==3.1"))
    assert not response.success
    assert response.error is not None
    first = response.error.splitlines()[0]
    assert first == "installing flashdemo-does-not-exist==3.1 with uv failed: exit code 1"
    lines = _messages(response.stdout)
    assert lines[0] == "INFO | installing flashdemo-does-not-exist==3.1 with uv"
    assert any("flashdemo-does-not-exist" in line and line.startswith("ERROR") for line in lines[1:])
    assert "ERROR | execution failed: DependencyError: " + response.error.splitlines()[0] in lines
    span = telemetry.span("flash.dependencies.python")
    assert span.attributes is not None
    assert span.attributes["flash.dependencies.exit_code"] == 1
    assert (telemetry.span("flash.execute").attributes or {})["flash.success"] is False


def test_successful_uv_install_exports_info_records(telemetry: TelemetryCapture, tmp_path: Path) -> None:
    """Every record a successful real uv install exports is INFO, though uv writes to stderr."""
    build_wheel(tmp_path / "wheels", "flashdemo-levels", "1.0")
    with _executor(telemetry, **_offline(tmp_path / "wheels", tmp_path / "t")) as executor:
        response = executor.execute_sync(_use("flashdemo_levels", "flashdemo-levels==1.0"))
    assert response.success, response.error
    install = telemetry.span("flash.dependencies.python").context.span_id
    records = [r.log_record for r in telemetry.log_records() if r.log_record.span_id == install]
    bodies = [str(record.body) for record in records]
    assert any(body.startswith("Resolved 1 package") for body in bodies), bodies
    assert " + flashdemo-levels==1.0" in bodies
    assert {(record.severity_text, record.severity_number) for record in records} == {
        ("INFO", SeverityNumber.INFO)
    }


def test_failing_uv_install_exports_its_error_lines_as_errors(
    telemetry: TelemetryCapture, tmp_path: Path
) -> None:
    """A failing real uv install exports its ``error:`` line and what follows it at ERROR."""
    (tmp_path / "wheels").mkdir()
    with _executor(telemetry, **_offline(tmp_path / "wheels", tmp_path / "t")) as executor:
        response = executor.execute_sync(_use("json", "flashdemo-missing==1.0"))
    assert not response.success
    install = telemetry.span("flash.dependencies.python").context.span_id
    records = [r.log_record for r in telemetry.log_records() if r.log_record.span_id == install]
    first_error = next(i for i, r in enumerate(records) if str(r.body).startswith("error: "))
    assert {r.severity_text for r in records[first_error:]} == {"ERROR"}
    assert any("flashdemo-missing" in str(r.body) for r in records[first_error:])
    assert {r.severity_text for r in records[:first_error]} <= {"INFO"}


@pytest.mark.parametrize(
    ("lines", "levels"),
    [
        (["Resolved 1 package in 3ms", "Installed 1 package in 1ms", " + a==1.0"], ["INFO"] * 3),
        (
            ["warning: `VIRTUAL_ENV` does not match", "  it is ignored", "Resolved 1 package in 3ms"],
            ["WARNING", "WARNING", "INFO"],
        ),
        (
            [
                "Using Python 3.11",
                "error: No solution found",
                "  cause: a was not found",
                "",
                "hint: offline",
            ],
            ["INFO", "ERROR", "ERROR", "ERROR", "ERROR"],
        ),
        (["Looking in links: /w", "ERROR: Could not find a version", "Done"], ["INFO", "ERROR", "ERROR"]),
        (
            ["Reading package lists...", "W: Some index files failed", "E: Unable to locate"],
            ["INFO", "WARNING", "ERROR"],
        ),
        (["  \u00d7 No solution found when resolving dependencies:"], ["ERROR"]),
    ],
)
def test_output_levels_follow_what_lines_say(lines: list[str], levels: list[str]) -> None:
    """Progress is INFO; warnings, errors, their indented continuations and all after an error are not."""
    classify = OutputLevels()
    assert [logging.getLevelName(classify(line)) for line in lines] == levels


def test_timeout_kills_the_installers_process_group(telemetry: TelemetryCapture, tmp_path: Path) -> None:
    """A hung build under pip dies with pip (whole group), is reaped, keeps its output, says timed out."""
    pid_file = tmp_path / "backend.pid"
    build_hanging_sdist(tmp_path / "dists", "flashdemo-hang", pid_file)
    # 15 s: on two loaded cores pip may take several seconds to reach the build backend
    settings = _offline(tmp_path / "dists", tmp_path / "t", "pip", install_timeout_s=15.0)
    with _executor(telemetry, **settings) as executor:
        response = executor.execute_sync(_use("json", "flashdemo-hang"))
    assert not response.success
    assert response.error is not None
    assert response.error.startswith(
        "installing flashdemo-hang with pip timed out after 15 s; its process group was killed (exit code -9)"
    )
    assert any(
        "Processing" in line and "flashdemo_hang-1.0.tar.gz" in line for line in _messages(response.stdout)
    )
    backend = int(pid_file.read_text())
    assert not psutil.pid_exists(backend) or psutil.Process(backend).status() == psutil.STATUS_ZOMBIE
    span = telemetry.span("flash.dependencies.python")
    assert span.attributes is not None
    assert span.attributes["flash.dependencies.exit_code"] == -9


def test_already_satisfied_starts_no_process(telemetry: TelemetryCapture, tmp_path: Path) -> None:
    """The second request for an installed version skips the installer and says so on its span."""
    build_wheel(tmp_path / "wheels", "flashdemo-again", "1.5")
    with _executor(telemetry, **_offline(tmp_path / "wheels", tmp_path / "t")) as executor:
        first = executor.execute_sync(_use("flashdemo_again", "flashdemo-again>=1.2,<2"))
        shutil.rmtree(tmp_path / "wheels")  # an installer started now would fail
        second = executor.execute_sync(_use("flashdemo_again", "flashdemo-again>=1.2,<2"))
    assert first.success and second.success, (first.error, second.error)
    assert _messages(second.stdout) == [
        "INFO | Python dependencies already satisfied: flashdemo-again<2,>=1.2",
        "imported flashdemo_again 1.5",
    ] or _messages(second.stdout) == [
        "INFO | Python dependencies already satisfied: flashdemo-again>=1.2,<2",
        "imported flashdemo_again 1.5",
    ]
    spans = [s for s in telemetry.spans() if s.name == "flash.dependencies.python"]
    assert [dict(s.attributes or {}).get("flash.dependencies.skipped") for s in spans] == [None, True]
    assert "flash.dependencies.exit_code" not in (spans[1].attributes or {})


def test_concurrent_requests_for_one_new_package_install_once(
    telemetry: TelemetryCapture, tmp_path: Path
) -> None:
    """Two requests at once for the same new package: one installer runs, the other waits and skips."""
    build_wheel(tmp_path / "wheels", "flashdemo-together", "1.0")
    barrier = threading.Barrier(2)
    responses = []

    def run(executor: RemoteExecutor) -> None:
        barrier.wait()
        responses.append(executor.execute_sync(_use("flashdemo_together", "flashdemo-together==1.0")))

    with _executor(telemetry, **_offline(tmp_path / "wheels", tmp_path / "t")) as executor:
        threads = [threading.Thread(target=run, args=(executor,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [r.success for r in responses] == [True, True], [r.error for r in responses]
    spans = [s.attributes or {} for s in telemetry.spans() if s.name == "flash.dependencies.python"]
    assert sorted("flash.dependencies.exit_code" in a for a in spans) == [False, True]
    assert sorted(bool(a.get("flash.dependencies.skipped")) for a in spans) == [False, True]


def _unpack(wheel: Path, site: Path) -> None:
    """Install a wheel the simplest real way: unzip it into a site directory."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)


def test_unsatisfied_reads_versions_markers_and_extras(tmp_path: Path) -> None:
    """Version ranges, markers that do not apply and the requirements an extra adds are all honoured."""
    site = tmp_path / "site"
    _unpack(
        build_wheel(tmp_path / "w", "flashdemo-base", "2.0", requires=["flashdemo-x>=1; extra == 'x'"]), site
    )
    _unpack(build_wheel(tmp_path / "w", "flashdemo-x", "0.5"), site)
    requirements = parse_requirements(
        [
            "flashdemo-base>=2",
            "flashdemo_base==2.0",
            "flashdemo-base<2",
            "flashdemo-base[x]",
            "flashdemo-absent; python_version < '3'",
            "flashdemo-absent",
        ]
    )
    missing = unsatisfied(requirements, [str(site)])
    assert [str(r) for r in missing] == ["flashdemo-base<2", "flashdemo-base[x]", "flashdemo-absent"]


@pytest.mark.parametrize(
    "entry", ["numpy", "torch==2.3.1", "pkg[a,b]>=1; python_version >= '3.8'", "p @ https://h/p.whl"]
)
def test_valid_requirements_are_accepted(entry: str) -> None:
    """Plain names, pins, extras with markers and URL requirements all pass validation."""
    assert [str(r) for r in parse_requirements([entry])] == [str(Requirement(entry))]


# --- system packages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["curl", "libssl3", "g++", "python3.11-dev", "libc6:amd64", "curl=7.88.1-10+deb12u5"]
)
def test_debian_package_names_accepted(name: str) -> None:
    """Debian names, with an architecture or an exact version, are accepted."""
    assert check_system_packages([name]) == [name]


@pytest.mark.parametrize(
    "name", ["-y", "--allow-unauthenticated", "Curl", "a", "", "curl; rm -rf /", "x/y", "curl vim"]
)
def test_debian_package_names_refused(name: str) -> None:
    """Options, upper case, one-letter names, shell syntax and paths are refused by name."""
    with pytest.raises(DependencyError, match="refused system dependency"):
        check_system_packages([name])


def test_apt_argv() -> None:
    """apt-get runs non-interactively, without recommended packages, the names last."""
    assert apt_update_argv("/usr/bin/apt-get") == ["/usr/bin/apt-get", "update", "-q"]
    assert apt_install_argv("/usr/bin/apt-get", ["curl", "git"]) == [
        "/usr/bin/apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "curl",
        "git",
    ]


def test_apt_unavailable_reasons() -> None:
    """Without apt-get or without root, apt is refused with a reason; as root with apt-get it is allowed."""
    assert apt_unavailable_reason(0, "/usr/bin/apt-get") is None
    assert "needs root" in (apt_unavailable_reason(1000, "/usr/bin/apt-get") or "")
    assert "apt-get was not found" in (apt_unavailable_reason(0, None) or "")


def test_python_installer_argv() -> None:
    """uv and pip get the interpreter or target, the operator's options, then the requirements."""
    uv = PythonInstaller("uv", ("/bin/uv",))
    assert uv.argv(["a==1"], python="/py", target=None, options=["--no-index"]) == [
        "/bin/uv", "pip", "install", "--python", "/py", "--no-progress", "--color", "never",
        "--no-index", "a==1",
    ]  # fmt: skip
    pip = PythonInstaller("pip", ("/py", "-m", "pip"))
    assert pip.argv(["a==1"], python="/py", target="/t") == [
        "/py", "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        "--target", "/t", "--upgrade", "a==1",
    ]  # fmt: skip
    assert choose_python_installer("pip", (), "/py").command == ("/py", "-m", "pip")
    assert choose_python_installer("auto", ("/x/uv",), "/py") == PythonInstaller("uv", ("/x/uv",))


@pytest.fixture
def recording_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in apt-get that records each call's arguments (the real one needs network and root)."""
    if os.geteuid() != 0:
        pytest.skip("the apt path needs root")
    script = tmp_path / "apt-get"
    script.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/calls"\necho "apt says $1"\n')
    script.chmod(0o755)
    monkeypatch.setattr(dependencies_module, "_apt_updated", False)
    return script


def test_apt_updates_once_per_process_then_installs(recording_apt: Path, tmp_path: Path) -> None:
    """The package lists are updated once per process; each install names only packages not yet installed."""
    installer = DependencyInstaller(FlashConfig(), apt_get=str(recording_apt))
    installer.install_system(["flashdemo-missing-one"])
    installer.install_system(
        ["flashdemo-missing-two", "coreutils"]
        if Path("/var/lib/dpkg/status").exists()
        else ["flashdemo-missing-two"]
    )
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [
        "update -q",
        "install -y -q --no-install-recommends flashdemo-missing-one",
        "install -y -q --no-install-recommends flashdemo-missing-two",
    ]


def test_system_packages_come_before_python_packages(telemetry: TelemetryCapture, tmp_path: Path) -> None:
    """The system phase ends before the Python phase starts; an installed system package starts no process."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None or not Path("/var/lib/dpkg/status").exists():
        pytest.skip("needs root on a Debian-like system")
    build_wheel(tmp_path / "wheels", "flashdemo-ordered", "1.0")
    request = {**_use("flashdemo_ordered", "flashdemo-ordered"), "system_dependencies": ["coreutils"]}
    with _executor(telemetry, **_offline(tmp_path / "wheels", tmp_path / "t")) as executor:
        response = executor.execute_sync(request)
    assert response.success, response.error
    system, python = telemetry.span("flash.dependencies.system"), telemetry.span("flash.dependencies.python")
    assert system.end_time is not None and python.start_time is not None
    assert system.end_time <= python.start_time
    assert (system.attributes or {}).get("flash.dependencies.skipped") is True
    assert _messages(response.stdout)[0] == "INFO | system dependencies already satisfied: coreutils"


@pytest.mark.apt
def test_real_apt_install(telemetry: TelemetryCapture) -> None:
    """As root on Debian, apt-get really installs a small package (needs the Debian mirrors)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("needs root on a Debian-like system")
    subprocess.run(["apt-get", "remove", "-y", "-q", "sl"], capture_output=True, check=False)
    request = {**function_request("def f():\n    return 1\n", "f"), "system_dependencies": ["sl"]}
    with _executor(telemetry, install_timeout_s=600.0) as executor:
        response = executor.execute_sync(request)
    assert response.success, response.stdout
    assert Path("/usr/games/sl").exists()
    assert (telemetry.span("flash.dependencies.system").attributes or {}).get(
        "flash.dependencies.exit_code"
    ) == 0


@pytest.mark.asyncio
async def test_async_entry_point_streams_installer_lines_too(
    telemetry: TelemetryCapture, tmp_path: Path
) -> None:
    """Through execute() the installer runs in a worker thread, its lines still in this request's stdout."""
    build_wheel(tmp_path / "wheels", "flashdemo-async", "1.0")
    with _executor(telemetry, **_offline(tmp_path / "wheels", tmp_path / "t")) as executor:
        response = await executor.execute(_use("flashdemo_async", "flashdemo-async==1.0"))
    assert response.success, response.error
    lines = _messages(response.stdout)
    assert lines[0] == "INFO | installing flashdemo-async==1.0 with uv"
    assert "INFO |  + flashdemo-async==1.0" in lines
    assert lines[-1] == "imported flashdemo_async 1.0"
