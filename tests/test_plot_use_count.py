"""`ptycho-group plot --color-by use-count`: positions coloured by how many groups use them."""
import numpy as np
import pytest

from ptycho_data.raw_data import RawData

pytest.importorskip("matplotlib")

UNUSED_RGBA = (0.85, 0.1, 0.1, 1.0)


def test_scatter_colours_are_the_use_counts():
    from matplotlib import pyplot as plt

    from ptycho_cli.plot import draw_groups
    x, y = np.arange(8.0), np.zeros(8)
    groups = np.array([[0, 1, 2], [1, 2, 3], [2, 1, 4], [5, 5, 1]])  # 6 and 7 unused
    fig = draw_groups(x, y, groups, show=2, color_by="use-count")
    try:
        dots = fig.axes[0].collections[0]
        assert np.array_equal(np.asarray(dots.get_array()), [1, 4, 3, 1, 1, 2, 0, 0])
        rgba = dots.to_rgba(dots.get_array())
        assert np.allclose(rgba[6], UNUSED_RGBA) and np.allclose(rgba[7], UNUSED_RGBA)
        assert not np.allclose(rgba[:6], UNUSED_RGBA)  # every used count has another colour
        assert len({tuple(c) for c in rgba[[0, 5, 2, 1]].round(6)}) == 4  # 1, 2, 3, 4 differ
        bar = fig.axes[1]  # the colour bar
        assert "groups using the position" in bar.get_ylabel()
    finally:
        plt.close(fig)


def test_unknown_colour_choice_names_the_value():
    from ptycho_cli.plot import draw_groups
    with pytest.raises(ValueError, match="color_by.*'size'"):
        draw_groups([0.0, 1.0], [0.0, 0.0], np.array([[0, 1]]), color_by="size")


def test_cli_use_count_colours_match_the_groups(cli, tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    seen = {}
    real = Figure.savefig

    def spy(self, *args, **kwargs):
        dots = self.axes[0].collections[0]
        seen["counts"] = np.asarray(dots.get_array()).copy()
        seen["offsets"] = np.asarray(dots.get_offsets()).copy()
        seen["bar"] = self.axes[1].get_ylabel()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    cli("demo-data", "-o", "d.npz", "--points", "400", cwd=tmp_path)
    cli("plot", "d.npz", "-o", "p.png", "--groups", 150, "--color-by", "use-count",
        cwd=tmp_path)
    raw = RawData.from_file(tmp_path / "d.npz")
    nn = raw.group_indices(32, K=7, nsamples=150, gridsize=2, seed=0)
    expected = np.bincount(np.asarray(nn).ravel(), minlength=400)
    assert np.array_equal(seen["counts"], expected)
    assert np.allclose(seen["offsets"], np.column_stack([raw.xcoords, raw.ycoords]))
    assert (expected == 0).any() and expected.max() >= 2  # the test sees holes and repeats
    assert seen["bar"].startswith("groups using the position")
    assert (tmp_path / "p.png").stat().st_size > 0
