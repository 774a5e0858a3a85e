"""Paired statistics against scipy and hand computations."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import benchkit
from benchkit.errors import UserError
from benchkit.report.stats import bootstrap_ci, compare_all, wilcoxon_p


def test_bootstrap_ci_matches_scipy_percentile_bootstrap():
    values = np.random.default_rng(3).normal(1.5, 2.0, size=60)
    ours = bootstrap_ci(values, n_resamples=20_000)
    ref = stats.bootstrap((values,), np.mean, method="percentile", n_resamples=20_000,
                          random_state=np.random.default_rng(9)).confidence_interval
    sem = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(ours[0] - ref.low) < 0.1 * sem and abs(ours[1] - ref.high) < 0.1 * sem
    # and both near the normal-theory interval mean +- 1.96 sem
    assert abs(ours[0] - (values.mean() - 1.96 * sem)) < 0.15 * sem


def test_bootstrap_of_a_constant_is_that_constant():
    assert bootstrap_ci(np.full(7, 0.25)) == (0.25, 0.25)


def test_wilcoxon_exact_p_by_hand():
    # six positive differences with distinct ranks: W+ = 21 is the largest of 2^6 equally likely
    # sign patterns, so the two-sided exact p-value is 2 / 64
    assert wilcoxon_p(np.array([1.0, 2, 3, 4, 5, 6])) == pytest.approx(2 / 64)
    assert wilcoxon_p(np.zeros(5)) == 1.0


def _results(a, b, shuffle_b=True):
    ids = np.arange(len(a))
    order = np.random.default_rng(0).permutation(len(b)) if shuffle_b else ids
    rows = [{"dataset": "d", "mask": "m", "method": "A", "image_id": i, "psnr": a[i], "ssim": a[i] / 100}
            for i in ids]
    rows += [{"dataset": "d", "mask": "m", "method": "B", "image_id": i, "psnr": b[i], "ssim": b[i] / 100}
             for i in order]
    return pd.DataFrame(rows)


def test_compare_pairs_by_image_and_matches_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(20, 2, 40)
    b = a - 0.5 + rng.normal(0, 0.4, 40)
    table = benchkit.compare(_results(a, b), "A", "B")
    row = table[table.metric == "psnr"].iloc[0]
    assert row.n == 40 and row["diff"] == pytest.approx(np.mean(a - b))
    assert row.p_wilcoxon == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert row.ci_low < row["diff"] < row.ci_high and row.ci_low > 0  # a real 0.5 dB gap
    assert len(compare_all(_results(a, b))) == 2  # one pair, two metrics


def test_compare_unknown_method():
    with pytest.raises(UserError, match="method 'C' is not in these results"):
        benchkit.compare(_results([1.0], [2.0]), "A", "C")


def test_holm_adjusts_as_the_step_down_procedure_written_out():
    from benchkit.report.stats import holm

    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # by hand: sorted 0.005, 0.01, 0.03, 0.04 (m = 4) -> 4 * 0.005, 3 * 0.01, 2 * 0.03, 1 * 0.04, then
    # running maximum: 0.02, 0.03, 0.06, 0.06
    expected = np.array([0.03, 0.06, 0.06, 0.02, np.nan])
    np.testing.assert_allclose(holm(p), expected, equal_nan=True)
    assert holm([0.6, 0.9]).tolist() == [1.0, 1.0]  # capped at 1


def test_compare_to_a_reference_and_all_pairs_carry_holm_p_values():
    from benchkit.report.stats import compare_all, compare_to, holm

    rng = np.random.default_rng(0)
    rows = [{"dataset": "d", "mask": "m", "method": method, "image_id": i, "psnr": 20 + shift + rng.normal()}
            for method, shift in (("a", 0.0), ("b", 1.0), ("c", 0.1)) for i in range(30)]
    df = pd.DataFrame(rows)
    table = compare_to(df, "a", "psnr")
    assert list(table.method_a) == ["b", "c"] and set(table.method_b) == {"a"} and table["diff"].iloc[0] > 0
    np.testing.assert_allclose(table.p_holm, holm(table.p_wilcoxon))
    assert len(compare_all(df, "psnr")) == 3
