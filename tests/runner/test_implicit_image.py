"""data=image: an image file (PNG or JPEG, grey or colour) as coordinates -> values, PSNR and bits per pixel,
a run through the command line, bad files."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from hol.runner.cli import main
from hol.runner.data import DataError
from hol.runner.implicit_image import ImplicitImageDataModule, default_image_path
from hol.runner.records import METRICS_FILE
from hol.runner.tasks import ImageRegression, bits, psnr
from tests.helpers.runs import QUIET, tensorboard_events

PIXELS_RGB = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                       [[0, 0, 0], [255, 255, 255], [51, 102, 204]]], dtype=np.uint8)  # H=2, W=3


def write(path, array: np.ndarray, **options):
    Image.fromarray(array).save(path, **options)
    return path


@pytest.mark.parametrize("grey", [False, True])
def test_png_pixels_become_coordinates_and_values(tmp_path, grey):
    array = PIXELS_RGB[..., 1] if grey else PIXELS_RGB
    data = ImplicitImageDataModule(path=str(write(tmp_path / "image.png", array)), value_range=(-1, 1))
    data.prepare_data()
    data.setup("fit")
    assert data.image_shape == (2, 3, 1 if grey else 3) and data.out_features == (1 if grey else 3)
    coordinates, values = data.test_set.tensors
    # pixel centres: x_j = -1 + 2 (j + 1/2) / 3, y_i = -1 + 2 (i + 1/2) / 2, row-major
    expected = torch.tensor([[x, y] for y in (-0.5, 0.5) for x in (-2 / 3, 0.0, 2 / 3)])
    torch.testing.assert_close(coordinates, expected)
    torch.testing.assert_close(values, torch.from_numpy(array.reshape(6, -1) / 255 * 2 - 1).float())
    assert data.val_set is data.train_set is data.test_set  # no held-out pixels: all sets are the image
    torch.testing.assert_close(data.to_image(values), torch.from_numpy(array.reshape(2, 3, -1) / 255 * 2 - 1)
                               .permute(2, 0, 1).float())


@pytest.mark.parametrize("grey", [False, True])
def test_jpeg_grey_and_colour(tmp_path, grey):
    colour = [40, 120, 200]
    array = np.full((8, 16, 3), colour, dtype=np.uint8)  # flat colour: JPEG keeps it up to rounding
    path = write(tmp_path / "image.jpg", array[..., 0] if grey else array, quality=95)
    data = ImplicitImageDataModule(path=str(path), value_range=(0, 1), domain=(-0.5, 0.5))
    data.setup("fit")
    coordinates, values = data.test_set.tensors
    assert coordinates.shape == (128, 2) and values.shape == (128, 1 if grey else 3)
    assert coordinates[0].tolist() == pytest.approx([-0.5 + 0.5 / 16, -0.5 + 0.5 / 8])
    expected = torch.tensor(colour[:1] if grey else colour) / 255
    assert (values - expected).abs().max() < 3 / 255


def test_16_bit_grey_png_keeps_its_precision_and_size_resizes(tmp_path):
    array = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    data = ImplicitImageDataModule(path=str(write(tmp_path / "deep.png", array)), value_range=(0, 1))
    torch.testing.assert_close(data.intensities[..., 0], torch.from_numpy(array / 65535).float())
    resized = ImplicitImageDataModule(path=str(default_image_path()), size=32)
    assert resized.image_shape == (32, 32, 3)


def test_held_out_pixels_are_the_validation_set(tmp_path):
    data = ImplicitImageDataModule(holdout_fraction=0.25, seed=3)
    data.setup("fit")
    pixels = 128 * 128
    assert len(data.test_set) == pixels and len(data.val_set) == pixels // 4
    assert len(data.train_set) == pixels - pixels // 4
    assert not set(data.val_set.indices) & set(data.train_set.indices)
    assert data.task_options == {"value_range": [-1.0, 1.0], "pixels": pixels}


def test_missing_and_unreadable_files_raise_a_data_error_naming_the_path(tmp_path):
    with pytest.raises(DataError, match=f"image file not found: {tmp_path / 'nope.png'}"):
        ImplicitImageDataModule(path=str(tmp_path / "nope.png")).prepare_data()
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match=f"cannot read the image {tmp_path / 'text.png'}"):
        ImplicitImageDataModule(path=str(tmp_path / "text.png")).prepare_data()


def test_psnr_and_bits_per_pixel_by_hand():
    task = ImageRegression(value_range=(-1.0, 1.0), pixels=6)
    target = torch.zeros(6, 3)
    output = target.clone()
    output[0, 0] = 0.3  # squared error 0.09 over 18 values: rmse 0.0707..., psnr 20 log10(2 / 0.0707) dB
    task.update("test", output, target, torch.nn.functional.mse_loss(output, target))
    net = torch.nn.Linear(2, 3)  # 9 float32 coefficients: 288 bits over 6 pixels
    values = task.compute("test", net)
    assert values["rmse"].item() == pytest.approx(math.sqrt(0.09 / 18), rel=1e-6)
    assert values["psnr"].item() == pytest.approx(29.0309, abs=1e-4)
    assert values["bpp"].item() == pytest.approx(48.0) and bits(net) == 288
    assert psnr(0.5, 1.0).item() == pytest.approx(20 * math.log10(2))


def test_run_logs_psnr_bpp_and_the_image(in_tmp, capsys):
    path = write(in_tmp / "tiny.png", np.kron(PIXELS_RGB, np.ones((4, 4, 1), dtype=np.uint8)))  # 8 x 12
    main(["train", "experiment=implicit_image", *QUIET, f"data.path={path}", "trainer.max_epochs=2",
          "trainer.check_val_every_n_epoch=1", "data.batch_size=32", "model.input_layer.segments=4",
          "model.hidden_width=4", "hydra.run.dir=run"])
    metrics = json.loads((in_tmp / "run" / METRICS_FILE).read_text())
    assert {"test/loss", "test/rmse", "test/psnr", "test/bpp", "val/psnr_best"} <= set(metrics)
    assert metrics["test/psnr"] == pytest.approx(20 * math.log10(2 / metrics["test/rmse"]), rel=1e-5)
    coefficients = 2 * 4 * 9 + 4 * 4 * 5 + 4 * 3 * 5  # input (K=9), hidden and output layers (K=5)
    assert metrics["test/bpp"] == pytest.approx(coefficients * 32 / 96)
    events = tensorboard_events(in_tmp / "run")
    image = events.Images("images/reconstruction")[-1]
    assert (image.width, image.height) == (12, 8)
    assert "val/psnr" in events.Tags()["scalars"]


def test_bad_image_file_is_one_line_through_the_command_line(in_tmp, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "data=image", "data.path=missing.png", "hydra.run.dir=run"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and err.startswith("hol train: error: image file not found: missing.png")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
