"""Pattern energies (the X_full scale) do not depend on the machine's thread count."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from ptycho_data.grouped_arrays import frame_energies, pattern_energies

_CHILD = """
import hashlib, numpy as np
from ptycho_data.grouped_arrays import frame_energies
d = np.random.default_rng(0).gamma(2.0, 3.0, (64, 128, 128)).astype(np.float32)
print(hashlib.sha256(frame_energies(d).tobytes()).hexdigest())
"""


@pytest.mark.real_process
def test_energies_are_the_same_bits_for_one_thread_and_four():
    # BLAS dot products (how the energies were summed before) split 128x128 frames
    # between threads and summed the parts in another order per thread count.
    digests = set()
    for threads in ("1", "4"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads)
        digests.add(subprocess.run([sys.executable, "-c", _CHILD], env=env, check=True,
                                   capture_output=True, text=True).stdout.strip())
    d = np.random.default_rng(0).gamma(2.0, 3.0, (64, 128, 128)).astype(np.float32)
    assert digests == {hashlib.sha256(frame_energies(d).tobytes()).hexdigest()}


def test_energies_equal_the_sum_of_squares_and_do_not_depend_on_the_batch():
    rng = np.random.default_rng(1)
    d = rng.integers(0, 2**16, (300, 48, 48)).astype(np.uint16)  # squares overflow uint16
    e = frame_energies(d)
    ref = (d.astype(np.float64) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(e, ref, rtol=1e-12)
    assert np.array_equal(e[17:18], frame_energies(d[17:18]))
    grouped = np.moveaxis(d[:240].reshape(60, 4, 48, 48), 1, 3)  # (B, N, N, C)
    assert np.array_equal(pattern_energies(grouped), e[:240].reshape(60, 4))
