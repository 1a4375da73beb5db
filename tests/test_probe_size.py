import numpy as np
import pytest

from ptycho_data.probe_size import probe_diameter


def test_top_hat_disc_diameter():
    yy, xx = np.indices((128, 128)) - 63.5
    probe = (np.hypot(yy, xx) <= 20).astype(np.complex64)
    # 90% of a uniform disc of radius 20 lies within radius 20*sqrt(0.9) = 18.97.
    assert probe_diameter(probe) == pytest.approx(2 * 20 * np.sqrt(0.9) + 1, abs=1.5)


def test_gaussian_and_missing():
    yy, xx = np.indices((64, 64)) - 31.5
    sigma = 5.0
    probe = np.exp(-(yy ** 2 + xx ** 2) / (4 * sigma ** 2))  # |p|^2 has std sigma
    # 90% energy radius of a 2-D Gaussian: sigma * sqrt(-2 ln 0.1) = 2.146 sigma.
    assert probe_diameter(probe) == pytest.approx(2 * 2.146 * sigma + 1, abs=1.0)
    assert probe_diameter(None) is None
    assert probe_diameter(np.zeros((4, 4))) is None
