"""QA statistics and grades: known noise and peaks, exact threshold boundaries, no warnings."""

from __future__ import annotations

import math
import tracemalloc
import warnings
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from assets.qa.statistics import (
    DEFAULT_MAX_SAMPLES,
    ImageStats,
    QAResult,
    QAThresholds,
    compute_stats,
    grade,
    worst_grade,
)
from resources.errors import ConfigurationError, QAError
from tests.assets.synthetic import full_robust_rms, noise_image, smoothed_noise_image

SIGMA = 0.002
BEAM = (30.0, 20.0, 45.0)


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    """Any numpy RuntimeWarning (division by zero, all-NaN slice...) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- statistics on synthetic images -----------------------------------------------------------


@pytest.mark.parametrize("n", [256, 1024, 4096])
def test_rms_and_dynamic_range_match_the_known_noise_and_peak(n: int) -> None:
    image = noise_image(n, sigma=SIGMA, seed=n, peak=0.8)
    stats = compute_stats(image)
    assert stats.rms is not None and stats.dynamic_range is not None
    assert abs(stats.rms / SIGMA - 1) < 0.02
    assert stats.peak == pytest.approx(0.8, rel=1e-6)  # float32 storage of 0.8
    assert abs(stats.dynamic_range / (0.8 / SIGMA) - 1) < 0.02
    assert stats.n_pixels == stats.n_finite == n * n
    assert stats.nan_fraction == 0.0


@pytest.mark.parametrize(
    ("label", "make"),
    [
        ("gauss 1024 seed 1", lambda: noise_image(1024, seed=1)),
        ("gauss 1500x2500", lambda: noise_image(1500, 2500, seed=2, n_sources=500)),
        ("gauss 4096", lambda: noise_image(4096, seed=3, n_sources=2000)),
        ("beam-correlated 2048", lambda: smoothed_noise_image(2048, seed=4)),
        ("gauss 2048, 70% blanked", lambda: _blank(noise_image(2048, seed=5), 0.7)),
    ],
)
def test_subsample_estimator_is_within_2_percent_of_the_full_image_rms(label, make) -> None:
    image = make()
    stats = compute_stats(image)
    reference = full_robust_rms(image)
    assert stats.estimator == "mad-subsample", label
    assert stats.n_samples <= DEFAULT_MAX_SAMPLES
    assert stats.rms is not None
    relative = abs(stats.rms / reference - 1)
    assert relative < 0.02, f"{label}: {relative:.4%}"
    # The stated bound is itself under 2 % and holds on these images.
    assert 0 < stats.rms_rel_error_bound < 0.02
    assert relative <= stats.rms_rel_error_bound, f"{label}: {relative:.4%}"


def _blank(image: np.ndarray, fraction: float) -> np.ndarray:
    """Blank the outer part of the image (like a primary-beam cut) to the given fraction."""
    n_rows = image.shape[0]
    image[: int(n_rows * fraction)] = np.nan
    return image


def test_blanked_image_reports_nan_fraction_and_samples_only_finite_pixels() -> None:
    image = _blank(noise_image(2048, seed=6), 0.7)
    stats = compute_stats(image)
    assert stats.nan_fraction == pytest.approx(int(2048 * 0.7) / 2048)
    assert stats.n_finite == image.size - int(2048 * 0.7) * 2048
    # The fallback pass keeps the sample large enough for the stated bound.
    assert stats.n_samples >= DEFAULT_MAX_SAMPLES // 2


def test_small_images_use_every_finite_pixel_exactly() -> None:
    image = noise_image(300, seed=7)
    image[:10] = np.nan
    image[20, 20] = np.inf
    stats = compute_stats(image)
    assert stats.estimator == "mad-exact" and stats.rms_rel_error_bound == 0.0
    assert stats.sample_stride == 1
    assert stats.rms == pytest.approx(full_robust_rms(image), rel=1e-12)
    assert stats.n_finite == 300 * 300 - 3000 - 1  # inf counts as blank, like NaN


def test_max_samples_forces_subsampling_and_the_bound_grows() -> None:
    image = noise_image(1024, seed=8)
    coarse = compute_stats(image, max_samples=50_000)
    fine = compute_stats(image)
    assert coarse.n_samples <= 50_000 < fine.n_samples
    assert coarse.rms_rel_error_bound > fine.rms_rel_error_bound
    assert coarse.rms is not None
    assert abs(coarse.rms / full_robust_rms(image) - 1) <= coarse.rms_rel_error_bound


def test_strided_sample_covers_every_column_even_when_width_divides_the_stride() -> None:
    """A stripe in a few columns must not be over- or under-sampled by a bad stride."""
    image = noise_image(2048, seed=9)
    image[:, ::8] *= 3  # every 8th column is noisier; a stride of 8/16/... would see only them
    stats = compute_stats(image, max_samples=2048 * 2048 // 16)
    assert stats.sample_stride % 2 == 1
    assert stats.rms is not None
    assert abs(stats.rms / full_robust_rms(image) - 1) < 0.02


def test_integer_and_higher_dimensional_inputs() -> None:
    ints = (np.arange(10_000, dtype=np.int16) % 7).reshape(100, 100)
    stats = compute_stats(ints)
    assert stats.peak == 6 and stats.n_finite == 10_000
    assert stats.rms == pytest.approx(full_robust_rms(ints))
    cube = noise_image(64, seed=10)[None, None]
    assert compute_stats(cube).rms == compute_stats(cube[0, 0]).rms


def test_non_numeric_input_is_a_qa_error_naming_the_image() -> None:
    with pytest.raises(QAError, match="img.fits"):
        compute_stats(np.array([["a", "b"]]), source="/data/img.fits")


# --- degenerate images: fail with a reason, never a warning ------------------------------------


def test_all_nan_image_fails_with_reason_and_no_warnings() -> None:
    stats = compute_stats(np.full((512, 512), np.nan, dtype=np.float32))
    assert stats.rms is None and stats.peak is None and stats.dynamic_range is None
    assert stats.nan_fraction == 1.0
    result = grade(stats, *BEAM)
    assert result.grade == "fail"
    assert any("no finite pixel" in r for r in result.reasons)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((600, 600), dtype=np.float32),
        np.full((600, 600), 3.5, dtype=np.float64),
        np.zeros((2000, 2000), dtype=np.float32),  # large: subsampled path
    ],
    ids=["all-zero", "constant", "all-zero-large"],
)
def test_constant_images_fail_on_zero_rms_without_dividing(image: np.ndarray) -> None:
    stats = compute_stats(image)
    assert stats.rms == 0.0
    assert stats.dynamic_range is None
    result = grade(stats, *BEAM)
    assert result.grade == "fail"
    assert result.reasons[0].startswith("rms is 0")


def test_empty_and_all_inf_images_fail() -> None:
    empty = grade(compute_stats(np.empty((0, 10))), *BEAM)
    assert empty == QAResult("fail", ("no finite pixel (empty image)",))
    infs = compute_stats(np.full((4, 4), np.inf))
    assert infs.n_finite == 0 and grade(infs, *BEAM).grade == "fail"


def test_noise_only_image_fails_on_dynamic_range() -> None:
    image = np.random.default_rng(11).normal(0, SIGMA, (512, 512))
    result = grade(compute_stats(image), *BEAM)
    assert result.grade == "fail"
    assert result.reasons[0].startswith("dynamic range ") and result.reasons[0].endswith(" < 10")


# --- grade boundaries -------------------------------------------------------------------------


def _stats(*, rms: float = 0.001, dr: float = 500.0, nan_fraction: float = 0.0) -> ImageStats:
    return ImageStats(
        rms=rms,
        peak=dr * rms,
        dynamic_range=dr,
        nan_fraction=nan_fraction,
        n_pixels=100,
        n_finite=100,
        median=0.0,
        estimator="mad-exact",
        n_samples=100,
        sample_stride=1,
        rms_rel_error_bound=0.0,
    )


def test_good_image_has_no_reasons() -> None:
    assert grade(_stats(), *BEAM) == QAResult("good", ())


@pytest.mark.parametrize(
    ("dr", "expected", "reason"),
    [
        (9.99, "fail", "dynamic range 9.99 < 10"),
        (8.2, "fail", "dynamic range 8.2 < 10"),
        (math.nextafter(10.0, 0.0), "fail", "dynamic range 9.9999999999999982 < 10"),
        (10.0, "warn", "dynamic range 10 < 100"),  # exactly 10 is not < 10
        (99.5, "warn", "dynamic range 99.5 < 100"),
        (100.0, "good", None),  # exactly 100 is not < 100
    ],
)
def test_dynamic_range_boundaries(dr: float, expected: str, reason: str | None) -> None:
    result = grade(_stats(dr=dr), *BEAM)
    assert result.grade == expected
    assert result.reasons == ((reason,) if reason else ())


@pytest.mark.parametrize(
    ("rms", "expected"),
    [(0.010, "good"), (math.nextafter(0.010, 1.0), "warn"), (0.0123, "warn")],
)
def test_rms_boundary(rms: float, expected: str) -> None:
    result = grade(_stats(rms=rms), *BEAM)
    assert result.grade == expected
    if expected == "warn":
        assert result.reasons[0].startswith("rms ")
        assert result.reasons[0].endswith(" mJy/beam > 10 mJy/beam")
    if rms == 0.0123:
        assert result.reasons == ("rms 12.3 mJy/beam > 10 mJy/beam",)


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.5, "good"), (math.nextafter(0.5, 1.0), "warn"), (0.8, "warn")]
)
def test_nan_fraction_boundary(fraction: float, expected: str) -> None:
    result = grade(_stats(nan_fraction=fraction), *BEAM)
    assert result.grade == expected
    if fraction == 0.8:
        assert result.reasons == ("NaN fraction 80 % > 50 %",)


@pytest.mark.parametrize(
    ("beam", "fragment"),
    [
        ((None, None, None), "beam missing"),
        ((30.0, None, 0.0), "beam missing (minor axis"),
        ((float("nan"), 20.0, 0.0), "major axis nan is not finite"),
        ((30.0, 0.0, 0.0), "minor axis 0 arcsec is not positive"),
        ((-3.0, -4.0, 0.0), "major axis -3 arcsec is not positive"),
        ((20.0, 30.0, 0.0), "minor axis 30 arcsec > major axis 20 arcsec"),
        ((30.0, 20.0, float("inf")), "position angle inf is not finite"),
    ],
)
def test_beam_problems_warn(beam: tuple, fragment: str) -> None:
    result = grade(_stats(), *beam)
    assert result.grade == "warn"
    assert any(fragment in r for r in result.reasons), result.reasons


def test_beam_edge_cases_that_are_fine() -> None:
    assert grade(_stats(), 20.0, 20.0, None).grade == "good"  # circular beam, no PA
    lenient = QAThresholds(require_beam=False)
    assert grade(_stats(), None, None, None, lenient).grade == "good"


def test_fail_lists_warn_reasons_too_and_worst_grade_wins() -> None:
    result = grade(_stats(rms=0.05, dr=5.0, nan_fraction=0.9), None, None, None)
    assert result.grade == "fail"
    assert len(result.reasons) == 4
    assert not result.passed
    assert worst_grade(["good", "warn"]) == "warn"
    assert worst_grade(["good", "fail", "warn"]) == "fail"
    assert worst_grade([]) == "good"


# --- thresholds configuration ------------------------------------------------------------------


def test_thresholds_from_mapping_change_the_boundaries() -> None:
    t = QAThresholds.from_mapping({"fail_dynamic_range": "20", "warn_rms_jy": 0.001})
    assert t == QAThresholds(fail_dynamic_range=20.0, warn_rms_jy=0.001)
    assert grade(_stats(dr=15.0), *BEAM, thresholds=t).grade == "fail"
    assert grade(_stats(rms=0.002), *BEAM, thresholds=t).grade == "warn"
    assert QAThresholds.from_mapping(None) == QAThresholds()
    assert QAThresholds.from_mapping(t.to_dict()) == t


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"fail_dr": 5}, "qa"),
        ({"warn_rms_jy": "lots"}, "qa.warn_rms_jy"),
        ({"warn_rms_jy": True}, "qa.warn_rms_jy"),
        ({"require_beam": "yes"}, "qa.require_beam"),
        ({"warn_dynamic_range": 5.0}, "qa.warn_dynamic_range"),
        ({"warn_nan_fraction": 1.5}, "qa.warn_nan_fraction"),
        ({"fail_dynamic_range": float("nan")}, "qa.fail_dynamic_range"),
    ],
)
def test_bad_thresholds_name_the_setting(config: dict, setting: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        QAThresholds.from_mapping(config)
    assert info.value.setting == setting


def test_result_and_stats_serialise_to_plain_dicts() -> None:
    stats = compute_stats(noise_image(128, seed=12))
    assert replace(stats).to_dict()["n_pixels"] == 128 * 128
    assert grade(stats, *BEAM).to_dict() == {"grade": "good", "reasons": []}


# --- memory ------------------------------------------------------------------------------------


def test_statistics_of_a_large_image_allocate_little_beyond_the_input() -> None:
    image = noise_image(4096, seed=13)  # 64 MB of float32
    tracemalloc.start()
    try:
        compute_stats(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 * 2**20, f"peak temporaries {peak / 2**20:.1f} MB"
