"""`mtl-lab dashboard`: our settings on the command line, loopback whatever the folder.

The command is built by a pure function (tested against .streamlit/config.toml, so the
two cannot drift apart); one test starts the real server from another folder and checks
where it listens, and that a /train link opens Train without "Page not found".
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from mtl_core import launcher
from mtl_core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT_S = 90.0


def _flat(table: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _flags(cmd: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in cmd if arg.startswith("--"))


def test_the_command_gives_every_setting_of_the_config_file_explicitly():
    cmd = launcher.dashboard_command(port=8600, python="python3")
    assert cmd[:4] == ["python3", "-m", "streamlit", "run"]
    assert Path(cmd[4]) == ROOT / "dashboard" / "app.py"  # found through the installed package
    flags = _flags(cmd)
    config = _flat(tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text()))
    for key, value in config.items():
        expected = str(value).lower() if isinstance(value, bool) else str(value)
        assert flags.get(key) == expected, key
    assert flags["server.address"] == "127.0.0.1" and flags["server.port"] == "8600"
    assert flags["server.maxUploadSize"] == "50" and flags["client.showErrorDetails"] == "none"


def test_the_command_does_not_depend_on_the_working_folder(tmp_path, monkeypatch):
    here = launcher.dashboard_command(port=8601)
    monkeypatch.chdir(tmp_path)
    assert launcher.dashboard_command(port=8601) == here


@pytest.mark.parametrize("port, host, message", [(0, "127.0.0.1", "--port 0"), (70000, "127.0.0.1", "between 1"),
                                                  (8501, " ", "--host")])
def test_a_bad_port_or_host_is_a_message(port, host, message):
    with pytest.raises(ConfigError, match=message):
        launcher.dashboard_command(port=port, host=host)


def test_the_environment_allows_the_network_and_data_folders_only_when_asked(tmp_path):
    env = launcher.dashboard_env(environ={"PATH": "/bin", launcher.ALLOW_REMOTE_ENV: "1"})
    assert launcher.ALLOW_REMOTE_ENV not in env and launcher.DATA_DIRS_ENV not in env
    remote = launcher.dashboard_env(host="0.0.0.0", environ={})
    assert remote[launcher.ALLOW_REMOTE_ENV] == "1"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    env = launcher.dashboard_env(data_dirs=[str(tmp_path / "a"), str(tmp_path / "b" / ".." / "b")],
                                 environ={launcher.DATA_DIRS_ENV: "/srv/data"})
    assert env[launcher.DATA_DIRS_ENV].split(os.pathsep) == ["/srv/data", str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(ConfigError, match="--data-dir .*not a folder"):
        launcher.dashboard_env(data_dirs=[str(tmp_path / "missing")], environ={})


def test_the_subcommand_parses_port_host_and_repeated_data_dirs():
    parser = argparse.ArgumentParser()
    launcher.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dashboard"])
    assert (args.port, args.host, args.data_dir, args.func) == (8501, "127.0.0.1", [], launcher.cmd_dashboard)
    args = parser.parse_args(["dashboard", "--port", "9000", "--data-dir", "x", "--data-dir", "y"])
    assert (args.port, args.data_dir) == (9000, ["x", "y"])


# ---- the real server ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} write them) listening on `port`."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                out.append(address)
    return out


def _is_loopback_hex(address: str) -> bool:
    if len(address) == 8:  # IPv4, little-endian: 0100007F = 127.0.0.1
        return address[-2:] == "7F"
    return address in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The dashboard started by the launcher from an unrelated folder; stopped by its PID.
    One server for the module: its tests only read from it."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc to read the listening sockets")
    tmp_path = tmp_path_factory.mktemp("launcher")
    port = _free_port()
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    # No fork server: these tests train nothing, and its torch import would only compete.
    env = {**os.environ, "MTL_LAB_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "MTL_LAB_WARM_WORKER": "0"}
    env.pop(launcher.ALLOW_REMOTE_ENV, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "mtl_core.launcher", "--port", str(port)], cwd=folder,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not start: {proc.stdout.read().decode(errors='replace')}")
            time.sleep(0.5)
        yield port, proc
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # the launcher became the server (exec): the same PID
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.slow
def test_the_launcher_serves_on_loopback_only_from_any_folder(server):
    port, proc = server
    addresses = _listening(port)
    assert addresses and all(_is_loopback_hex(a) for a in addresses), addresses
    # The machine's other addresses (if any) do not answer.
    for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
        other = info[4][0]
        if other.startswith("127."):
            continue
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((other, port)) != 0, other


@pytest.mark.slow
def test_a_train_link_opens_train_without_page_not_found(server):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    port, _ = server
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/train?steps=50", timeout=60_000)
            page.get_by_text("Set up an experiment above").wait_for(timeout=60_000)
            assert page.get_by_role("heading", name="Train").count() >= 1
            assert page.get_by_text("Page not found").count() == 0
            # The page streams its elements in: wait until the form shows the link's value.
            sync_api.expect(page.locator("input[aria-label='steps']")).to_have_value("50", timeout=60_000)
        finally:
            browser.close()
