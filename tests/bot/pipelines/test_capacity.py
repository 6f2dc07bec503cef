"""batch_limit "auto": pictures that fit the free memory, from the peak measured per picture."""

from __future__ import annotations

from bot.pipelines.capacity import DEFAULT_BATCH, MARGIN, PeakTable, images_that_fit

GIB = 1024**3


def test_pictures_fit_the_free_memory_less_a_margin() -> None:
    assert images_that_fit(10 * GIB, 1 * GIB) == int(10 * MARGIN)
    assert images_that_fit(10 * GIB, 1 * GIB, margin=1.0) == 10
    assert images_that_fit(10 * GIB, 1 * GIB, most=4) == 4


def test_one_picture_always_runs() -> None:
    # The executor's out-of-memory back-off handles a picture that does not fit at all.
    assert images_that_fit(0, 1 * GIB) == 1
    assert images_that_fit(GIB // 2, 1 * GIB) == 1


def test_without_a_peak_the_old_default_applies() -> None:
    assert images_that_fit(80 * GIB, 0) == DEFAULT_BATCH
    assert images_that_fit(80 * GIB, 0, most=2) == 2


def test_the_table_keeps_the_largest_peak_per_picture() -> None:
    table = PeakTable()
    table.record("sd", 512, 512, 4 * GIB, images=4)  # 1 GiB each
    table.record("sd", 512, 512, 3 * GIB, images=2)  # 1.5 GiB each: the worst seen wins
    table.record("sd", 512, 512, 1 * GIB, images=4)
    assert table.estimate("sd", 512, 512) == 1.5 * GIB


def test_other_sizes_scale_by_pixels_from_the_most_demanding_one() -> None:
    table = PeakTable()
    table.record("sd", 512, 512, 1 * GIB, images=1)
    table.record("sd", 256, 256, 1 * GIB, images=4)  # 1/4 GiB on 1/4 of the pixels: same rate
    table.record("sd", 512, 256, 1 * GIB, images=1)  # 1 GiB on half the pixels: the worst
    assert table.estimate("sd", 1024, 1024) == 8 * GIB
    assert table.estimate("sd", 512, 512) == 1 * GIB  # measured sizes stay as measured
    assert table.estimate("xl", 1024, 1024) is None  # another model knows nothing from it


def test_nothing_is_learned_from_an_empty_measurement() -> None:
    table = PeakTable()
    table.record("sd", 64, 64, 0, images=2)
    table.record("sd", 64, 64, 100, images=0)
    assert table.estimate("sd", 64, 64) is None
