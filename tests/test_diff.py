"""invoke diff: only what is personal to each letter."""
from builder.diff import personal, word_diff
from builder.load import load
from conftest import SAMPLE


def test_diff_shows_only_what_differs_for_london():
    batch = load(SAMPLE).batch
    london = next(r for r in batch.recipients if r.id == "london")
    lines = personal(batch, london)
    assert lines[0] == "to: Sophie Linden, Deputy Mayor for Policing and Crime in London"
    assert "omits office: My office comprises of a small team with …" in lines
    assert "finally (reworded): Finally, {+as you may be aware+} I have recently published …" in lines
    assert any(l.startswith("highlight (own): Having reviewed") for l in lines)
    assert not any("funding" in l or "public-health" in l for l in lines)  # shared, unchanged


def test_word_diff_marks_removed_and_added_words():
    assert word_diff("a b c d", "a x c d") == "a [-b-] {+x+} c d"


def test_diff_shows_a_changed_link_target_or_emphasis_and_sets_its_marks_apart():
    """A part worded the same but linking elsewhere (or no longer emphasised) was shown as
    "given, the same as the shared text": the reviewer never saw the new address. And
    text that itself holds "[-…-]" or "{+…+}" read as the diff's own marks."""
    from builder.diff import plain_text

    shared = "See the [Plan 2019-2021](https://example.org/plan) on *prevention*[^a]."
    own = "See the [Plan 2019-2021](https://evil.example.com/login) on prevention[^a]."
    assert plain_text(shared) == shared
    assert word_diff(plain_text(shared), plain_text(own)) == (
        "See the [Plan [-2019-2021](https://example.org/plan)-] {+2019-2021](https://evil.example.com/login)+} "
        "on [-*prevention*[^a].-] {+prevention[^a].+}")
    typed = plain_text("Keep [-this-] and {+that+} and a \\* star")
    assert typed == "Keep \\[-this-\\] and {\\+that+\\} and a \\* star"


def test_diff_names_a_recipient_it_cannot_show(tmp_path):
    """A recipient made invalid (a key misspelt) was left out of diff without a word, and
    `diff -o` naming it suggested another recipient: its problems are said, exit 1."""
    import subprocess
    import sys

    from conftest import ROOT

    source = tmp_path / "recipients.yaml"
    source.write_text(SAMPLE.read_text(encoding="utf-8").replace("salutation: Dear Roger,", "salutaton: Dear Roger,"),
                      encoding="utf-8")
    for only in ([], ["-o", "essex"]):
        done = subprocess.run([sys.executable, "-m", "invoke", "diff", "-r", str(source), *only], cwd=ROOT,
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 1, done.stderr
        assert "recipient 'essex', field 'salutaton': unknown key; did you mean 'salutation'?" in done.stderr
        assert done.stderr.rstrip().endswith("not shown, as not valid: essex (fix what is said above)")
        assert ("london\n" in done.stdout) == (not only)
