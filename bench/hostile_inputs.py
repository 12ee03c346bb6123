"""Hostile and clumsy inputs, each through the door a user would use: prints what each one
answers and counts the answers that are tracebacks.

    python bench/hostile_inputs.py [--only WORD] [--markdown]

Every case runs in its own fresh MTL_LAB_HOME: the CLI cases as a subprocess of
`python -m mtl_core` (what a user types), the dashboard cases through Streamlit's
AppTest on the page a link opens. A case "leaks" when its output holds a Python
traceback, when AppTest reports an uncaught exception, or when the dashboard shows a
byte of a file it was not given. The figures for issue 10's closing note come from here.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRACEBACK = "Traceback (most recent call last)"
SECRET = "s3cr3t-line-of-a-private-file"
TINY = ["--set", "steps=20", "--set", "eval_every=10", "--set", "log_every=5",
        "--set", "dataset.options.n_samples=200", "--set", "dataset.options.input_dim=4"]


class Lab:
    """A fresh MTL_LAB_HOME with helpers to run the CLI in it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mtl-hostile-"))
        self.home = self.dir / "home"
        self.env = {**os.environ, "MTL_LAB_HOME": str(self.home), "OMP_NUM_THREADS": "1",
                    "PYTHONPATH": str(ROOT)}

    def cli(self, *args: str, env: dict[str, str] | None = None, shell_tail: str = "") -> tuple[int, str]:
        cmd = [sys.executable, "-m", "mtl_core", *args]
        if shell_tail:  # e.g. "| head -1": through a real pipe
            line = " ".join(_quote(c) for c in cmd) + " " + shell_tail
            proc = subprocess.run(["bash", "-o", "pipefail", "-c", line], capture_output=True, text=True,
                                  env=env or self.env, cwd=self.dir, timeout=300)
        else:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env or self.env, cwd=self.dir,
                                  timeout=300)
        return proc.returncode, (proc.stdout + proc.stderr)

    def finished_run(self, *extra: str) -> str:
        rc, out = self.cli("run", "--config", str(ROOT / "examples" / "quickstart.yaml"), *TINY, "--quiet",
                           "--background", *extra)
        run_id = out.strip().splitlines()[-1].split()[-1]
        for _ in range(300):
            rc, out = self.cli("show", run_id, "--json")
            if '"status": "finished"' in out or '"status": "failed"' in out:
                break
            time.sleep(0.5)
        return run_id

    def write(self, name: str, data: bytes | str) -> Path:
        path = self.dir / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def db(self) -> Path:
        return self.home / "mtl_lab.db"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# ---- CLI cases --------------------------------------------------------------------------------
def cli_cases() -> list[tuple[str, Callable[[Lab], tuple[int, str]]]]:
    quick = str(ROOT / "examples" / "quickstart.yaml")

    def corrupt_config(lab: Lab) -> tuple[int, str]:
        run_id = lab.finished_run()
        with sqlite3.connect(lab.db()) as conn:
            conn.execute("UPDATE runs SET config='{not json' WHERE id=?", (run_id,))
        return lab.cli("show", run_id)

    def corrupt_delete(lab: Lab) -> tuple[int, str]:
        run_id = lab.finished_run()
        with sqlite3.connect(lab.db()) as conn:
            conn.execute("UPDATE runs SET config='{not json' WHERE id=?", (run_id,))
        return lab.cli("delete", run_id)

    def corrupt_export(lab: Lab) -> tuple[int, str]:
        run_id = lab.finished_run()
        with sqlite3.connect(lab.db()) as conn:
            conn.execute("UPDATE results SET payload='[[[' WHERE run_id=?", (run_id,))
        return lab.cli("export", run_id, "--out", str(lab.dir / "x.csv"))

    def garbage_db(lab: Lab) -> tuple[int, str]:
        lab.home.mkdir(parents=True)
        lab.db().write_bytes(b"this is not a database" * 100)
        return lab.cli("runs")

    def truncated_db(lab: Lab) -> tuple[int, str]:
        lab.finished_run()
        data = lab.db().read_bytes()
        lab.db().write_bytes(data[: len(data) // 3])
        for suffix in ("-wal", "-shm"):
            Path(str(lab.db()) + suffix).unlink(missing_ok=True)
        return lab.cli("runs")

    def schema_text(lab: Lab) -> tuple[int, str]:
        lab.cli("runs")
        with sqlite3.connect(lab.db()) as conn:
            conn.execute("UPDATE meta SET value='one' WHERE key='schema_version'")
        return lab.cli("runs")

    def export_to(target: str) -> Callable[[Lab], tuple[int, str]]:
        def case(lab: Lab) -> tuple[int, str]:
            run_id = lab.finished_run()
            out = target.replace("{dir}", str(lab.dir))
            return lab.cli("export", run_id, "--out", out)
        return case

    def home_is_file(lab: Lab) -> tuple[int, str]:
        f = lab.write("afile", "x")
        return lab.cli("runs", env={**lab.env, "MTL_LAB_HOME": str(f)})

    def home_unwritable(lab: Lab) -> tuple[int, str]:
        return lab.cli("runs", env={**lab.env, "MTL_LAB_HOME": "/proc/mtl-lab-home"})

    def worker_unknown(lab: Lab) -> tuple[int, str]:
        lab.cli("runs")
        proc = subprocess.run([sys.executable, "-m", "mtl_core.worker", "no-such-run"], capture_output=True,
                              text=True, env={**lab.env, "MTL_LAB_DB": str(lab.db())}, timeout=120)
        return proc.returncode, proc.stdout + proc.stderr

    def csv_file(name: str, text: str, targets: str) -> Callable[[Lab], tuple[int, str]]:
        def case(lab: Lab) -> tuple[int, str]:
            path = lab.write(name, text)
            config = lab.write("csv.yaml", f"dataset: {{name: csv, options: {{path: '{path}', targets: {targets}}}}}\n"
                                           "steps: 20\neval_every: 10\nlog_every: 5\n")
            return lab.cli("run", "--config", str(config), "--quiet")
        return case

    rows = "\n".join(f"{i % 7},{(i * 3) % 5},{i % 2},{(i * 0.37) % 1:.3f}" for i in range(200))
    big_field = 'a,b\n"' + "x" * (20 * 1024 * 1024) + '",1\n'

    def cancel_reused_pid(lab: Lab) -> tuple[int, str]:
        run_id = lab.finished_run()
        stranger = subprocess.Popen(["sleep", "60"])
        try:
            with sqlite3.connect(lab.db()) as conn:
                conn.execute("UPDATE runs SET status='running', pid=? WHERE id=?", (stranger.pid, run_id))
            rc, out = lab.cli("cancel", run_id)
            time.sleep(0.5)
            alive = stranger.poll() is None
            return rc, out + ("\n[the unrelated process is alive]" if alive else "\n[UNRELATED PROCESS KILLED]")
        finally:
            stranger.kill()
            stranger.wait()

    def disk_full(lab: Lab) -> tuple[int, str]:
        lab.cli("runs")
        with sqlite3.connect(lab.db()) as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        # max_page_count is per connection: a sitecustomize caps every connection of the child.
        custom = lab.dir / "cap"
        custom.mkdir()
        (custom / "sitecustomize.py").write_text(textwrap.dedent(f"""
            import sqlite3
            _connect = sqlite3.connect
            def connect(*a, **k):
                conn = _connect(*a, **k)
                conn.execute("PRAGMA max_page_count = {pages + 40}")
                return conn
            sqlite3.connect = connect
        """))
        env = {**lab.env, "PYTHONPATH": f"{custom}{os.pathsep}{ROOT}"}
        return lab.cli("run", "--config", quick, "--set", "steps=3000", "--set", "log_every=1", "--quiet", env=env)

    return [
        ("show an unknown run id", lambda lab: lab.cli("show", "no-such-run")),
        ("delete an unknown run id", lambda lab: lab.cli("delete", "no-such-run")),
        ("cancel an unknown run id", lambda lab: lab.cli("cancel", "no-such-run")),
        ("run --config missing.yaml", lambda lab: lab.cli("run", "--config", "missing.yaml")),
        ("run --config <a binary file>", lambda lab: lab.cli("run", "--config", str(lab.write("b.yaml", bytes(range(256)) * 4)))),
        ("run --config <a directory>", lambda lab: lab.cli("run", "--config", str(lab.dir))),
        ("run --config <YAML list, not mapping>", lambda lab: lab.cli("run", "--config", str(lab.write("l.yaml", "- a\n- b\n")))),
        ("run --set steps=abc", lambda lab: lab.cli("run", "--config", quick, "--set", "steps=abc")),
        ("run --set weights.nope=2 (unknown task)", lambda lab: lab.cli("run", "--config", quick, "--set", "weights.nope=2")),
        ("run --set weights.y1=-1 (negative weight)", lambda lab: lab.cli("run", "--config", quick, "--set", "weights.y1=-1")),
        ("run --set weights.y1=0 weights.y2=0 (all zero)", lambda lab: lab.cli("run", "--config", quick, "--set", "weights.y1=0", "--set", "weights.y2=0")),
        ("run --set tasks=[nope]", lambda lab: lab.cli("run", "--config", quick, "--set", "tasks=[nope]")),
        ("run --set dataset.name=nope", lambda lab: lab.cli("run", "--config", quick, "--set", "dataset.name=nope")),
        ("run --set optimizer.lr=1e6 (diverges)", lambda lab: lab.cli("run", "--config", quick, *TINY, "--quiet", "--set", "optimizer.lr=1e6")),
        ("run --json /proc/x.json (unwritable)", lambda lab: lab.cli("run", "--config", quick, *TINY, "--quiet", "--json", "/proc/x.json")),
        ("export --out /missing/dir/x.csv", export_to("/nonexistent-dir/x.csv")),
        ("export --out /proc/x.csv (unwritable)", export_to("/proc/x.csv")),
        ("export --out <a directory>", export_to("{dir}")),
        ("runs | head -1 (broken pipe)", lambda lab: (lab.finished_run(), lab.finished_run(), lab.cli("runs", shell_tail="| head -1"))[-1]),
        ("MTL_LAB_HOME is a file", home_is_file),
        ("MTL_LAB_HOME cannot be created", home_unwritable),
        ("python -m mtl_core.worker <unknown id>", worker_unknown),
        ("show a run whose config JSON is damaged", corrupt_config),
        ("delete a run whose config JSON is damaged", corrupt_delete),
        ("export a run whose result JSON is damaged", corrupt_export),
        ("runs on a file that is not a database", garbage_db),
        ("runs on a truncated database", truncated_db),
        ("schema_version is not an integer", schema_text),
        ("cancel a run whose PID now belongs to a stranger", cancel_reused_pid),
        ("disk full during a foreground run", disk_full),
        ("CSV: malformed (unbalanced quote)", csv_file("bad.csv", 'a,b\n1,"2\n3,4\n', "[a]")),
        ("CSV: NaN in every target row", csv_file("nan.csv", "a,b\n" + "\n".join(f"{i},nan" for i in range(200)), "[b]")),
        ("CSV: target column name with a dot", csv_file("dot.csv", "x.1,y.2,z,w\n" + rows, "[x.1,y.2]")),
        ("CSV: a 20 MB field", csv_file("big.csv", big_field, "[b]")),
        ("CSV: target column missing", csv_file("ok.csv", "a,b,c,d\n" + rows, "[nope]")),
        ("CSV: empty file", csv_file("empty.csv", "", "[a]")),
    ]


# ---- dashboard cases ---------------------------------------------------------------------------
def dashboard_cases() -> list[tuple[str, dict[str, str], str]]:
    """(what, query parameters, page) for links a stranger could send."""
    hostile = '<iframe srcdoc="<script>document.title=1</script>">'
    return [
        ("link: csv path /etc/passwd", {"dataset.name": "csv", "dataset.options.path": "/etc/passwd"}, "train"),
        ("link: csv path to a private file", {"dataset.name": "csv", "dataset.options.path": "{secret}"}, "train"),
        ("link: csv path ../../ traversal", {"dataset.name": "csv", "dataset.options.path": "{home}/uploads/../../secret.csv"}, "train"),
        ("link: csv path ~/.bashrc", {"dataset.name": "csv", "dataset.options.path": "~/.bashrc"}, "train"),
        ("link: n_samples=200000, input_dim=1024", {"dataset.options.n_samples": "200000", "dataset.options.input_dim": "1024"}, "train"),
        ("link: steps=abc", {"steps": "abc"}, "train"),
        ("link: batch_size=-5", {"batch_size": "-5"}, "train"),
        ("link: weights.y1=nan", {"weights.y1": "nan"}, "train"),
        ("link: weights.y1=-3", {"weights.y1": "-3"}, "train"),
        ("link: dataset.name=nope", {"dataset.name": "nope"}, "train"),
        ("link: sharing.name=<b>x</b>", {"sharing.name": "<b>x</b>"}, "train"),
        ("link: device=tpu", {"device": "tpu"}, "train"),
        ("link: tasks=[nope]", {"tasks": "[nope]"}, "train"),
        ("link: dataset={broken", {"dataset": "{broken"}, "train"),
        ("link: hostile run id on Train", {"run": hostile}, "train"),
        ("link: markdown-image run id on Results", {"run": "![t](http://127.0.0.1:9/x.png)"}, "results"),
        ("link: hostile run id on Interference", {"run": hostile}, "interference"),
        ("link: hostile transfer id on Transfer", {"transfer": hostile}, "transfer"),
        ("link: hostile run id on Runs", {"run": hostile}, "runs"),
    ]


def run_dashboard_case(query: dict[str, str], page: str, *, with_run: bool = False) -> tuple[bool, str]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    home = Path(tempfile.mkdtemp(prefix="mtl-hostile-ui-"))
    if with_run:  # a lab that holds a finished run, so the pages draw more than "no runs yet"
        lab = Lab()
        lab.home = home / "lab"
        lab.env["MTL_LAB_HOME"] = str(lab.home)
        lab.finished_run("--name", '<iframe srcdoc="<script>document.title=1</script>"> ![t](http://127.0.0.1:9/x.png)')
    secret = home.parent / f"{home.name}-secret.csv"
    secret.write_text(f"{SECRET},b\n1,2\n")
    (home / "secret.csv").write_text(f"{SECRET},b\n1,2\n")
    os.environ["MTL_LAB_HOME"] = str(home / "lab")
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value.replace("{secret}", str(secret)).replace("{home}", str(home / "lab"))
    at.run()
    if page != "train":
        at.switch_page(f"app_pages/{page}.py").run()
    shown = []
    for kind in ("error", "warning", "info", "caption", "markdown", "success"):
        shown += [str(e.value) for e in getattr(at, kind)]
    labels = [str(getattr(w, "label", "")) for w in list(at.multiselect) + list(at.selectbox)]
    options = [str(o) for w in at.multiselect for o in w.options]
    text = "\n".join(shown + labels + options)
    # Markup that reached Markdown unescaped: a raw tag or image (escaped ones read `\<`, `\!\[`).
    # Select options are plain text in Streamlit (never Markdown), so only a file's content counts there.
    raw_markup = re.search(r"(?<!\\)<(iframe|script)|(?<!\\)!(?<!\\)\[t", "\n".join(shown + labels))
    leaked = bool(at.exception) or TRACEBACK in text or SECRET in text or "root:x:0:0" in text or bool(raw_markup)
    if at.exception:
        text = "EXCEPTION: " + "; ".join(str(e.value) for e in at.exception) + "\n" + text
    messages = [s for s in [str(e.value) for e in list(at.error) + list(at.warning)] if s]
    return leaked, (messages[0] if messages else text.splitlines()[0] if text else "(no message)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only cases whose description contains this word")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args()
    results: list[tuple[str, bool, str]] = []
    for what, case in cli_cases():
        if args.only and args.only not in what:
            continue
        lab = Lab()
        try:
            rc, out = case(lab)
        except Exception as exc:  # the harness itself failed: count it as a leak to look at
            rc, out = -1, f"{TRACEBACK}\nharness: {type(exc).__name__}: {exc}"
        leaked = TRACEBACK in out or "UNRELATED PROCESS KILLED" in out
        lines = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith(("WARNING", "INFO"))]
        message = next((ln for ln in lines if ln.startswith("error")), lines[-1] if lines else "(no output)")
        results.append((f"`mtl-lab` {what} (exit {rc})", leaked, message))
        print(("LEAK " if leaked else "ok   ") + f"{what} (exit {rc}): {message[:300]}", flush=True)
    for what, query, page in dashboard_cases():
        if args.only and args.only not in what:
            continue
        try:
            leaked, message = run_dashboard_case(query, page, with_run="run" in query or "transfer" in query)
        except Exception as exc:
            leaked, message = True, f"harness: {type(exc).__name__}: {exc}"
        results.append((f"{what} ({page})", leaked, message))
        print(("LEAK " if leaked else "ok   ") + f"{what} ({page}): {message[:300]}", flush=True)
    n_leaks = sum(1 for _, leaked, _ in results if leaked)
    print(f"\n{len(results)} hostile inputs tried, {n_leaks} tracebacks or leaks left")
    if args.markdown:
        print("\n| input | answer |\n|---|---|")
        for what, leaked, message in results:
            cell = message.replace("|", "\\|").replace("\n", " ")[:240]
            print(f"| {what} | {'**LEAK** ' if leaked else ''}{cell} |")
    return 1 if n_leaks else 0


if __name__ == "__main__":
    sys.exit(main())
