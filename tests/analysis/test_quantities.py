import numpy as np
import pytest

from jhpo.analysis.quantities import normalised_regret, regret


def test_regret_and_normalised_regret_by_hand():
    np.testing.assert_array_equal(regret([3.0, 2.0], 1.0, "min"), [2.0, 1.0])
    np.testing.assert_array_equal(regret([3.0, 2.0], 4.0, "max"), [1.0, 2.0])
    np.testing.assert_array_equal(normalised_regret([3.0, 2.0], 1.0, 5.0, "min"),
                                  [0.5, 0.25])
    np.testing.assert_array_equal(normalised_regret([3.0, 2.0], 4.0, 0.0, "max"),
                                  [0.25, 0.5])
    with pytest.raises(ValueError, match="worst=1.0 must be worse than optimum=1.0"):
        normalised_regret([2.0], 1.0, 1.0, "min")


def test_regret_keeps_missing_values_missing():
    np.testing.assert_array_equal(regret([np.nan, 2.0], 1.0, "min"), [np.nan, 1.0])
