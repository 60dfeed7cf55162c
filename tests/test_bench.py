"""The benchmark runs and prints its figures (it asserts no timing)."""
import subprocess
import sys

from conftest import ROOT


def test_benchmark_prints_every_figure():
    out = subprocess.run([sys.executable, "benchmarks/bench.py", "--letters", "4", "--baseline-sample", "1",
                          "--engine-letters", "4", "--table-rows", "20"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for label in ("build + merge, cold", "raw pdflatex, 1 pass each", "speed-up over raw sequential pdflatex",
                  "nothing changed", "one recipient edited", "peak memory (the command)",
                  "status, five letters", "compose", "build (cold)", "preflight", "merge",
                  "rebuild, no change", "rebuild, one edited", "web copies against print build",
                  "again", "pikepdf, no cover", "pypdf, no cover", "font programs", "goal >= 30x:"):
        assert label in out, label
    assert "4 letters" in out
    loading = out.split("Loading 20 recipients", 1)[1].splitlines()
    assert [line.split()[0] for line in loading[1:4]] == ["YAML", "CSV", "XLSX"]
