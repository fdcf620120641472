#!/usr/bin/env python3
"""A fork server for the parity scripts: imports torch, transformers and the other heavy modules
once, then runs each requested script in a forked copy of itself.

The test suite starts about a hundred Python processes; each spent 2-4.5 CPU seconds importing
torch and transformers before doing a second of work. A forked child starts with those imports
done (copy-on-write), and is otherwise the script run as `python SCRIPT ARGS`: its own process,
`sys.argv`, `sys.path[0]` the script's folder, `__name__ == "__main__"`, the caller's environment,
working folder and exit status. Nothing here computes with torch before forking, so no thread
pool exists to be lost in the fork (what makes forking after torch work unsafe). Variables a
module reads as it is imported (HF_HUB_OFFLINE) come from the server's own environment, which
scripts/test.sh gives the values `run_python` sets.

    zygote.py SOCKET    serve on the Unix socket SOCKET until killed

A request is one JSON line: {"argv": [SCRIPT, ARGS...], "cwd": DIR, "env": {...}, "stdout": FILE,
"stderr": FILE}; the reply is one JSON line {"wait_status": N}, the raw status `waitpid` gave, once
the script has ended. tests/common/mod.rs (`run_python`) is the client; scripts/test.sh starts
and stops the server.
"""
import json
import os
import runpy
import signal
import socket
import sys
import traceback

# What the parity scripts import; a module missing here only costs its import in the child.
PRELOAD = [
    "numpy",
    "torch",
    "safetensors.torch",
    "transformers",
    "transformers.models.bert.modeling_bert",
    "transformers.models.distilbert.modeling_distilbert",
    "transformers.models.roberta.modeling_roberta",
    "transformers.models.xlm_roberta.modeling_xlm_roberta",
    "transformers.models.electra.modeling_electra",
    "transformers.models.albert.modeling_albert",
    "transformers.models.deberta_v2.modeling_deberta_v2",
    "transformers.models.modernbert.modeling_modernbert",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.trainer",
    "tokenizers",
    "pyarrow",
    "pyarrow.parquet",
    "sklearn.metrics",
    "scipy.stats",
]


def preload():
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - an optional module; the child imports it if it can
            print(f"zygote: not preloaded: {name}: {e}", file=sys.stderr)
    # transformers resolves its lazy top-level names on first access: touch the ones scripts use.
    import transformers

    for name in ["AutoModelForSequenceClassification", "AutoTokenizer", "AutoConfig", "BertConfig",
                 "BertForSequenceClassification", "BertTokenizer", "Trainer", "TrainingArguments"]:
        getattr(transformers, name, None)


def run_script(req):
    """In the worker: become `python SCRIPT ARGS` and run it; returns the exit code."""
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    for fd, path in [(1, req["stdout"]), (2, req["stderr"])]:
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    script = req["argv"][0]
    sys.argv = list(req["argv"])
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name="__main__")
        return 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - reported as Python reports an uncaught exception
        traceback.print_exc()
        return 1


def main():
    path = sys.argv[1]
    preload()
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path + ".tmp")
    server.listen(64)
    os.rename(path + ".tmp", path)  # the socket appears only once it accepts
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # request children are reaped by the kernel
    sys.stdout.flush()
    sys.stderr.flush()
    while True:
        conn, _ = server.accept()
        if os.fork() != 0:
            conn.close()
            continue
        # A request child: forks the worker, waits for it and sends its wait status.
        server.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            req = json.loads(conn.makefile("r").readline())
            pid = os.fork()
        except BaseException:  # noqa: BLE001 - a bad request ends this child only
            traceback.print_exc()
            os._exit(1)
        if pid == 0:
            conn.close()
            # Leaves main() and ends as `python SCRIPT` ends: atexit handlers run, files flush.
            sys.exit(run_script(req))
        try:
            _, status = os.waitpid(pid, 0)
            conn.sendall((json.dumps({"wait_status": status}) + "\n").encode())
        finally:
            os._exit(0)


if __name__ == "__main__":
    main()
