"""Quality regression: at a reduced size, the ConvDecoder and the deep decoder must beat
zero-filled and SigPy L1-wavelet (its weight swept on a separate slice) in mean SSIM.

Runs scripts/quality_table.py's quick setting at 4x and 8x (the script's default runs the full
table at 256x256)."""

import pytest


@pytest.fixture(scope="module")
def quality(tmp_path_factory, load_script):
    module = load_script("quality_table")
    return module.run(module.QUICK, tmp_path_factory.mktemp("quality"))


@pytest.mark.parametrize("protocol", [0, 1], ids=["4x", "8x"])
def test_untrained_decoders_beat_zero_filled_and_l1_wavelet(quality, protocol):
    summary = quality["protocols"][protocol]["summary"]
    ssim = {m: s["SSIM"] for m, s in summary.items()}
    for untrained in ("conv-decoder", "deep-decoder"):
        assert ssim[untrained] > ssim["l1-wavelet"] + 0.01, ssim
        assert ssim[untrained] > ssim["zero-filled"] + 0.05, ssim
    assert ssim["l1-wavelet"] > ssim["zero-filled"], ssim


def test_quality_script_writes_its_outputs(quality, tmp_path):
    assert quality["protocols"][0]["l1_lambda"] in (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    assert all(row["iterations"] > 0 for row in quality["protocols"][0]["rows"]
               if row["method"] in ("conv-decoder", "deep-decoder"))
