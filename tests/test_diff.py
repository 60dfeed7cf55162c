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
