"""Object patches (Y) against an independent SciPy reference, and their memory bound."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import ndimage

from ptycho_data import patches
from ptycho_data.patches import extract_patches
from ptycho_data.raw_data import RawData


def random_object(rng, h, w):
    return (rng.standard_normal((h, w)) + 1j * rng.standard_normal((h, w))).astype(np.complex64)


def reference_window(obj, sx, sy, N):
    """PtychoPINN's patch by another route: pad by N//2, shift by -(sx, sy) bilinearly, crop."""
    padded = np.pad(obj.astype(np.complex128), N // 2)
    moved = ndimage.shift(padded, (-sy, -sx), order=1, mode="grid-constant", cval=0)
    return moved[:N, :N]


@settings(max_examples=30)
@given(N=st.integers(1, 9), gridsize=st.sampled_from([1, 2]), h=st.integers(3, 20),
       w=st.integers(3, 20), m=st.integers(5, 12), seed=st.integers(0, 2**16))
def test_y_matches_scipy_shift_at_sub_pixel_positions(N, gridsize, h, w, m, seed):
    rng = np.random.default_rng(seed)
    obj = random_object(rng, h, w)
    # Positions anywhere from well outside the object to well inside it.
    x = rng.uniform(-N - 2, w + N + 2, m)
    y = rng.uniform(-N - 2, h + N + 2, m)
    rd = RawData.from_coords_without_pc(x, y, rng.random((m, N, N)) + 0.1, None, None,
                                        objectGuess=obj)
    out = rd.generate_grouped_data(N, K=4, nsamples=m, gridsize=gridsize, seed=seed)
    nn = out["nn_indices"]
    assert out["Y"].shape == (m, N, N, gridsize ** 2) and out["Y"].dtype == np.complex64
    # DESIGN's sign convention, computed here from the positions alone: each
    # member's window is cut at 2 * (group centre) - (member position).
    cx, cy = x[nn].mean(axis=1, keepdims=True), y[nn].mean(axis=1, keepdims=True)
    sx, sy = 2 * cx - x[nn], 2 * cy - y[nn]
    scale = np.abs(obj).max()
    for b in range(m):
        for c in range(gridsize ** 2):
            want = reference_window(obj, sx[b, c], sy[b, c], N)
            np.testing.assert_allclose(out["Y"][b, ..., c], want, rtol=0, atol=1e-5 * scale)


@given(N=st.integers(1, 12), h=st.integers(1, 15), w=st.integers(1, 15),
       seed=st.integers(0, 2**16))
def test_integer_shift_is_plain_slicing_of_the_padded_object(N, h, w, seed):
    rng = np.random.default_rng(seed)
    obj = random_object(rng, h, w)
    margin = N + 3
    # Corners from fully outside on one side to fully outside on the other.
    sx = rng.integers(-margin, w + 2 * (N // 2) + 3, 20)
    sy = rng.integers(-margin, h + 2 * (N // 2) + 3, 20)
    got = extract_patches(obj, np.column_stack([sx, sy]).astype(float), N)
    big = np.pad(obj, N // 2 + margin)  # the padded object, with zeros around it
    for k in range(20):
        r, c = sy[k] + margin, sx[k] + margin
        assert np.array_equal(got[k], big[r:r + N, c:c + N])


@pytest.mark.parametrize("N", [4, 7])
def test_chunking_does_not_change_the_result(monkeypatch, N):
    rng = np.random.default_rng(N)
    obj = random_object(rng, 30, 25)
    shifts = rng.uniform(-N, 35, (50, 2))
    whole = extract_patches(obj, shifts, N)
    monkeypatch.setattr(patches, "_CHUNK_PIXELS", 3 * N * N)  # 17 chunks, the last partial
    assert np.array_equal(extract_patches(obj, shifts, N), whole)


@pytest.mark.parametrize("count", [1024, 4096])
def test_temporaries_stay_one_chunk_whatever_the_count(count):
    import tracemalloc
    N = 32
    rng = np.random.default_rng(0)
    obj = random_object(rng, 128, 128)
    shifts = rng.uniform(0, 128, (count, 2))
    tracemalloc.start()
    try:
        out = extract_patches(obj, shifts, N)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    chunk = patches._CHUNK_PIXELS * 8  # one batch of complex64 blocks
    # Beyond the output: the blocks of one batch and their blends (a few
    # batches' worth), however many patches; the object is not copied.
    assert peak - out.nbytes < 4 * chunk


def test_a_memory_mapped_object_is_read_in_place_into_a_given_output(tmp_path):
    N = 6
    rng = np.random.default_rng(3)
    obj = random_object(rng, 20, 17)
    np.save(tmp_path / "obj.npy", obj)
    mapped = np.load(tmp_path / "obj.npy", mmap_mode="r")
    shifts = rng.uniform(-N, 25, (40, 2))
    out = np.full((40, N, N), np.nan, np.complex64)
    got = extract_patches(mapped, shifts, N, out=out)
    assert got is out and np.array_equal(out, extract_patches(obj, shifts, N))
