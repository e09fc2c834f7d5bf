"""The manifest's stats from counters: the input funnel adds up and drops are listed by reason."""

from corpusgen import stats


def test_records_and_files_in_the_funnel():
    counts = {
        stats.FILES_READ: 3,
        stats.RECORDS_READ: 7,
        stats.DOCUMENTS_READ: 3,
        stats.NON_STRING_TEXT: 3,
        stats.MALFORMED_JSON: 1,
        stats.TRUNCATED_FILE: 1,
        stats.HIDDEN_FILE: 2,
        stats.DUPLICATE_DOCUMENT: 1,
        "documents_kept": 2,
        "quality_too_short": 0,
    }
    s = stats.summarize(counts)
    assert s["files"] == {"read": 3, "dropped": 1, "skipped": 2}
    assert s["records"] == {"read": 7, "dropped": 4}
    assert s["documents"]["read"] == 3 and s["documents"]["kept"] == 2
    assert s["drops"] == {
        stats.TRUNCATED_FILE: 1,
        stats.HIDDEN_FILE: 2,
        stats.MALFORMED_JSON: 1,
        stats.NON_STRING_TEXT: 3,
        stats.DUPLICATE_DOCUMENT: 1,
    }
    assert stats.input_summary(s) == (
        "files: 3 read (1 dropped in whole or part), 2 skipped; records: 7 read, 4 dropped; documents: 3 read, 2 kept"
    )


def test_every_reason_is_listed_once():
    assert len(set(stats.DROP_REASONS)) == len(stats.DROP_REASONS)
    assert set(stats.RECORD_DROPS).isdisjoint(stats.FILE_DROPS)
