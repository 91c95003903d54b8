import math
import pickle
import re

import numpy as np
import pytest
import scipy.special
import torch

from hol.runner.data import (
    CIFAR100DataModule,
    DataError,
    EpochShuffleSampler,
    FunctionDataModule,
    MNISTDataModule,
    XorDataModule,
    read_cifar100,
)


def test_function_data_is_the_expression_on_the_domain():
    dm = FunctionDataModule(train_size=50, val_size=10, test_size=20, seed=3)
    dm.setup()
    x, y = dm.train_set.tensors
    assert dm.task == "regression" and dm.in_features == 1 and dm.out_features == 1
    assert x.shape == (50, 1) and y.shape == (50, 1)
    assert x.min() >= -1 and x.max() <= 1
    expected = 0.5 * torch.cos(1.5 * math.pi / (x.double().abs() + 0.25))
    torch.testing.assert_close(y, expected.float())


def test_function_data_two_dimensional_and_seeded():
    a = FunctionDataModule(expr="x*y", domain=[0, 2], train_size=30, seed=1)
    b = FunctionDataModule(expr="x*y", domain=[0, 2], train_size=30, seed=1)
    c = FunctionDataModule(expr="x*y", domain=[0, 2], train_size=30, seed=2)
    for dm in (a, b, c):
        dm.setup()
    assert a.in_features == 2 and a.input_shape == (2,)
    x, y = a.train_set.tensors
    assert x.min() >= 0 and x.max() <= 2
    torch.testing.assert_close(y[:, 0], x[:, 0] * x[:, 1])
    assert torch.equal(a.train_set.tensors[0], b.train_set.tensors[0])
    assert not torch.equal(a.train_set.tensors[0], c.train_set.tensors[0])
    assert not torch.equal(a.train_set.tensors[0][:10], a.test_set.tensors[0][:10])  # splits differ


def test_function_data_in_float64_is_the_expression_to_double_rounding():
    dm = FunctionDataModule(expr="exp(sin(pi*x)+y**2)", train_size=50, seed=3, dtype="float64")
    dm.setup()
    x, y = dm.train_set.tensors
    assert x.dtype == y.dtype == torch.float64
    torch.testing.assert_close(y[:, 0], torch.exp(torch.sin(math.pi * x[:, 0]) + x[:, 1] ** 2),
                               rtol=1e-15, atol=0)
    single = FunctionDataModule(expr="exp(sin(pi*x)+y**2)", train_size=50, seed=3)
    single.setup()
    assert torch.equal(single.train_set.tensors[0], x.float())  # the same points, rounded


def test_float64_is_the_data_default_under_64_true_precision():
    from omegaconf import OmegaConf

    from hol.runner.train import data_overrides

    cfg = OmegaConf.create({"trainer": {"precision": "64-true"}, "data": {"dtype": None}})
    assert data_overrides(cfg, cfg.data) == {"dtype": "float64"}
    cfg.trainer.precision = "32-true"
    assert data_overrides(cfg, cfg.data) == {"dtype": "float32"}
    cfg.data.dtype = "float64"
    assert data_overrides(cfg, cfg.data) == {}


def test_function_data_rejects_non_finite_targets():
    dm = FunctionDataModule(expr="log(x)", train_size=50)
    with pytest.raises(ValueError, match=r"data.expr 'log\(x\)' is not finite at x=-"):
        dm.setup()
    dm = FunctionDataModule(expr="arcsin(a) + b", variables={"a": [0, 2], "b": [0, 1]}, train_size=50)
    with pytest.raises(ValueError, match=r"not finite at a=1\.\d+, b=0\.\d+ \(sampled from a in \[0.0, 2"):
        dm.setup()


def test_function_data_of_named_variables_on_their_intervals():
    variables = {"nu": [0.0, 1.0], "r": [0.5, 2.0], "theta": [-3.0, -1.0]}
    dm = FunctionDataModule(expr="jv(nu, r) * cos(theta)", variables=variables, train_size=400,
                            dtype="float64")
    dm.setup()
    points, values = dm.train_set.tensors
    assert dm.dims == dm.in_features == 3 and dm.names == ("nu", "r", "theta")
    assert dm.input_domains == [[0.0, 1.0], [0.5, 2.0], [-3.0, -1.0]]
    for column, (low, high) in zip(points.T, variables.values(), strict=True):
        assert low <= column.min() < low + 0.05 and high - 0.05 < column.max() <= high  # fills its interval
    nu, r, theta = points.T.numpy()
    np.testing.assert_allclose(values[:, 0].numpy(), scipy.special.jv(nu, r) * np.cos(theta), rtol=1e-14)


@pytest.mark.parametrize("expr, variables, fragment", [
    ("x", {"x": [0, 1], "z": [0, 1]}, "data.variables: z not used by data.expr 'x'"),
    ("x", {"x": [1, 0]}, r"data.variables.x must be a pair \[low, high\] .* with low < high, got \[1, 0\]"),
    ("x + w", {"x": [0, 1]}, "data.expr: bad expression 'x \\+ w': the name 'w' \\(variables: x\\)"),
    ("x", [0, 1], "data.variables must be a mapping of names to intervals"),
    ("pi", {"pi": [0, 1]}, "data.variables: bad variable name 'pi'"),
])
def test_function_data_rejects_bad_variables(expr, variables, fragment):
    with pytest.raises(ValueError, match=fragment):
        FunctionDataModule(expr=expr, variables=variables)


def test_xor_targets():
    dm = XorDataModule(train_size=200, seed=0)
    dm.setup()
    x, y = dm.train_set.tensors
    expected = torch.where(x[:, 0] * x[:, 1] > 0, 0.5, -0.5)
    assert torch.equal(y[:, 0], expected) and (y > 0).any() and (y < 0).any()


def test_epoch_shuffle_depends_only_on_seed_and_epoch():
    sampler = EpochShuffleSampler(20, seed=5)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == list(range(20)) and first != second
    other = EpochShuffleSampler(20, seed=5)
    torch.rand(100)  # global random state must not matter
    other.set_epoch(1)
    assert list(other) == second


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "data.batch_size must be an integer >= 1, got 0"),
    ({"train_size": -1}, "data.train_size must be an integer >= 1"),
    ({"domain": [1, -1]}, "data.domain must be a pair"),
    ({"domain": "ab"}, "data.domain must be a pair"),
    ({"num_workers": -2}, "data.num_workers must be an integer >= 0"),
    ({"expr": "x > 1"}, "bad expression"),
    ({"dtype": "float16"}, "unknown data.dtype 'float16'; allowed: float32, float64"),
])
def test_function_data_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FunctionDataModule(**kwargs)


def test_mnist_from_idx_files(mnist_root):
    dm = MNISTDataModule(root=str(mnist_root), download=False, val_fraction=0.25, train_fraction=0.5,
                         batch_size=8, seed=0)
    dm.setup("fit")
    assert dm.task == "classification" and dm.in_features == 784 and dm.task_options == {"num_classes": 10}
    assert len(dm.val_set) == 15 and len(dm.train_set) == 22 and len(dm.test_set) == 20
    assert not set(dm.train_set.indices) & set(dm.val_set.indices)
    image, label = dm.test_set[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() == 1  # pixels 0..255 mapped onto [-1, 1]
    assert image[0, 2 * label:2 * label + 3].eq(1).all()
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].shape == (8, 1, 28, 28) and batch[1].dtype == torch.long


def test_mnist_missing_files_message(tmp_path):
    dm = MNISTDataModule(root=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(DataError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message and "data.root" in message
    assert "\n" not in message


def test_mnist_corrupt_file_message(mnist_root):
    (mnist_root / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    dm = MNISTDataModule(root=str(mnist_root), download=False)
    with pytest.raises(DataError, match="cannot read MNIST") as info:
        dm.setup()
    assert "\n" not in str(info.value)


def test_cifar100_from_pickles(cifar100_root):
    images, labels = read_cifar100(cifar100_root / "cifar-100-python" / "train")
    entry = pickle.loads((cifar100_root / "cifar-100-python" / "train").read_bytes())
    assert images.shape == (50, 3, 32, 32) and images.dtype == torch.uint8
    assert np.array_equal(images.reshape(50, -1).numpy(), entry["data"])
    assert labels.tolist() == entry["fine_labels"]
    dm = CIFAR100DataModule(root=str(cifar100_root), download=False, val_fraction=0.2, batch_size=4)
    dm.setup()
    assert dm.out_features == 100 and dm.in_features == 3072
    assert len(dm.train_set) == 40 and len(dm.val_set) == 10 and len(dm.test_set) == 20
    image, _ = dm.train_set[0]
    assert image.min() >= -1 and image.max() <= 1


def test_cifar100_refuses_foreign_objects(cifar100_root):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    path = cifar100_root / "cifar-100-python" / "train"
    path.write_bytes(pickle.dumps({"data": Evil(), "fine_labels": []}))
    dm = CIFAR100DataModule(root=str(cifar100_root), download=False)
    with pytest.raises(DataError, match=r"unexpected object builtins\.print"):
        dm.setup()


def test_cifar100_missing_files_message(tmp_path):
    dm = CIFAR100DataModule(root=str(tmp_path), download=False)
    with pytest.raises(DataError, match="cifar-100-python") as info:
        dm.prepare_data()
    assert "train, test, meta" in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"val_fraction": 0}, "data.val_fraction must be a number in (0, 1), got 0"),
    ({"val_fraction": 1}, "data.val_fraction"),
    ({"train_fraction": 1.5}, "data.train_fraction must be a number in (0, 1], got 1.5"),
    ({"input_range": [1, 1]}, "data.input_range"),
])
def test_image_data_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MNISTDataModule(**kwargs)


def test_a_null_batch_size_puts_each_split_in_one_batch():
    dm = FunctionDataModule(train_size=50, val_size=10, test_size=20, batch_size=None)
    dm.setup()
    assert [len(batch[0]) for batch in dm.train_dataloader()] == [50]
    assert [len(batch[0]) for batch in dm.test_dataloader()] == [20]
