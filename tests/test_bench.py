"""The benchmark runs and prints its figures (it asserts no timing)."""
import subprocess
import sys

from conftest import ROOT


def test_benchmark_prints_every_figure():
    out = subprocess.run([sys.executable, "benchmarks/bench.py", "--letters", "4", "--baseline-sample", "1"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for label in ("load + compose", "build (cold)", "merge", "rebuild, no change", "rebuild, one edited",
                  "raw pdflatex, 1 pass", "speed-up over raw sequential pdflatex", "peak memory", "bundle:"):
        assert label in out, label
    assert "4 letters, 0 failed" in out
