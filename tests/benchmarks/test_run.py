"""The suite runner: a missing or failing script is reported, the others still run, exit code non-zero."""
from __future__ import annotations

import sys
import types

from benchmarks import run


def test_failures_are_reported_and_do_not_stop_the_suite(monkeypatch, tmp_path, capsys):
    calls = []
    ok = types.ModuleType("benchmarks.fake_ok")
    ok.main = lambda argv: calls.append(("ok", argv))
    bad = types.ModuleType("benchmarks.fake_bad")

    def fail(argv):
        raise RuntimeError("boom")
    bad.main = fail
    monkeypatch.setitem(sys.modules, "benchmarks.fake_ok", ok)
    monkeypatch.setitem(sys.modules, "benchmarks.fake_bad", bad)
    monkeypatch.setattr(run, "SCRIPTS", ("fake_bad", "fake_absent", "fake_ok"))
    code = run.main(["--quick", "--records", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1 and calls == [("ok", ["--quick", "--records", str(tmp_path)])]  # the common flags, handed on
    assert "fake_bad: failed" in out and "fake_absent: missing" in out and "fake_ok: ok" in out
    assert "RuntimeError: boom" in err
