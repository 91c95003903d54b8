"""Every shipped config composes, and configs mirror the code objects they build."""
from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import hydra
import pytest
import torch
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import hol.layers
from hol.layers import HighOrderLinear, kind_info
from hol.networks import MLP, ConvNet
from hol.runner.cli import config_dir
from hol.runner.train import build_net
from hol.vae import VAE
from tests.helpers.configs import config_groups
from tests.helpers.presets import EXPERIMENTS
from tests.helpers.runs import compose_config

CONF = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def compose_train(*overrides: str, tmp_path: Path | None = None):
    return compose_config(list(overrides), run_dir=tmp_path, quiet=False)


def test_experiments_are_the_presets_of_the_issue():
    assert not any(path.is_symlink() for path in [CONF, *CONF.rglob("*")])  # configs are files, not links
    assert set(EXPERIMENTS) >= {"function", "function_2d", "formula", "xor", "invariant_mnist", "mnist",
                                "cifar100", "vae", "implicit_image", "implicit_image_relu",
                                "implicit_image_fourier", "implicit_image_siren", "poisson", "burgers", "sod"}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_builds_its_model(name, tmp_path):
    cfg = compose_train(f"experiment={name}", tmp_path=tmp_path)
    assert cfg.task_name == name
    OmegaConf.resolve(cfg)  # every interpolation resolves
    datamodule = hydra.utils.instantiate(cfg.data)  # reads no files yet
    net = build_net(cfg.model, datamodule)
    shape = (2, *datamodule.input_shape)
    x = torch.rand(shape) * 2 - 1
    output = net(x.flatten(1) if isinstance(net, MLP) else x)
    if isinstance(net, VAE):  # a generative model: images back
        assert output.decoded.shape == shape
    else:
        assert output.shape == (2, datamodule.out_features)
    optimizer = hydra.utils.instantiate(cfg.optimizer)(params=net.parameters())
    assert isinstance(optimizer, torch.optim.Optimizer)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_with_the_gpu_trainer(name, tmp_path):
    """trainer=gpu changes the device and the precision, nothing an experiment sets (its epochs stay, and its
    own precision, e.g. function_2d's float64)."""
    preset = OmegaConf.load(CONF / "experiment" / f"{name}.yaml")
    own_precision = OmegaConf.select(preset, "trainer.precision")
    cpu = compose_train(f"experiment={name}", tmp_path=tmp_path)
    gpu = compose_train(f"experiment={name}", "trainer=gpu", tmp_path=tmp_path)
    assert (gpu.trainer.accelerator, gpu.trainer.devices, gpu.trainer.precision) == (
        "gpu", 1, own_precision or "bf16-mixed")
    changed = {key for key in cpu.trainer.keys() | gpu.trainer.keys()
               if cpu.trainer.get(key) != gpu.trainer.get(key)}
    assert changed == {"accelerator", "deterministic"} | ({"precision"} if own_precision is None else set())
    assert OmegaConf.to_container(cpu, resolve=True, throw_on_missing=True).keys() == \
        OmegaConf.to_container(gpu, resolve=True, throw_on_missing=True).keys()


def test_config_groups_are_the_folders_hydra_takes_for_groups(tmp_path):
    """A ``__pycache__`` beside ``conf/__init__.py`` (importing ``hol.conf`` from a checkout writes one) is no
    config group: Hydra skips it, and the tests that list the groups must too (one took it for a group)."""
    conf = shutil.copytree(CONF, tmp_path / "conf")
    (conf / "__pycache__").mkdir()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        hydra_groups = GlobalHydra.instance().config_loader().list_groups("")
    assert config_groups(conf) == sorted(hydra_groups) and "experiment" in hydra_groups


def test_layer_group_has_every_registered_kind():
    assert options("layer") == hol.layers.kinds()
    for kind in options("layer"):
        cfg = OmegaConf.load(CONF / "layer" / f"{kind}.yaml")
        assert cfg.kind == kind


@pytest.mark.parametrize("kind", options("layer"))
def test_layer_node_is_the_layer_options_with_the_code_defaults(kind):
    parameters = inspect.signature(HighOrderLinear).parameters
    defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    del defaults["device"], defaults["dtype"]
    own = OmegaConf.to_container(OmegaConf.load(CONF / "layer" / f"{kind}.yaml"))
    layer = OmegaConf.to_container(compose_train(f"layer={kind}").layer)
    assert layer == {**defaults, **own} and own["kind"] == kind
    assert set(own) - {"kind"} <= kind_info(kind).options  # a group file changes only what its kind takes


@pytest.mark.parametrize("model", ["mlp", "conv", "vae"])
def test_the_network_takes_the_layer_node_whole(model):
    config = OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{model}.yaml"))
    assert config["layer"] == "${layer}" and config["_convert_"] == "all"


def test_layer_options_are_typed():
    with pytest.raises(Exception, match=r"layer\.n=abc"):
        compose_train("layer.n=abc")  # the cause: could not be converted to Integer
    assert compose_train("layer.backend=dense").layer.backend == "dense"


@pytest.mark.parametrize("model, cls", [("mlp", MLP), ("conv", ConvNet), ("vae", VAE)])
def test_model_keys_are_constructor_arguments(model, cls):
    keys = set(OmegaConf.load(CONF / "model" / f"{model}.yaml")) - {"_target_", "_convert_"}
    named = {name for name, p in inspect.signature(cls).parameters.items() if p.kind != p.VAR_KEYWORD}
    assert keys == named


@pytest.mark.parametrize("kind", [k for k in hol.layers.kinds() if k != "polynomial_nd"])
def test_every_layer_kind_builds_an_mlp(kind, tmp_path):
    cfg = compose_train(f"layer={kind}", "layer.n=4", tmp_path=tmp_path)
    net = build_net(cfg.model, hydra.utils.instantiate(cfg.data))
    assert net(torch.zeros(3, 1)).shape == (3, 1)
    if "n" in kind_info(kind).options:
        assert net.layers[0].n == 4


@pytest.mark.parametrize("kind", hol.layers.conv_kinds())
def test_every_conv_kind_builds_a_convnet(kind, tmp_path):
    cfg = compose_train("experiment=mnist", f"layer={kind}", "model.channels=[2,3]", tmp_path=tmp_path)
    net = build_net(cfg.model, hydra.utils.instantiate(cfg.data))
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_polynomial_nd_as_mlp_layer_is_a_clear_error(tmp_path):
    cfg = compose_train("layer=polynomial_nd", tmp_path=tmp_path)
    with pytest.raises(Exception) as info:
        build_net(cfg.model, hydra.utils.instantiate(cfg.data))
    assert "input_layer" in str(info.value)


@pytest.mark.parametrize("name", options("optimizer"))
def test_every_optimizer_builds(name, tmp_path):
    cfg = compose_train(f"optimizer={name}", tmp_path=tmp_path)
    assert cfg.optimizer.lr > 0
    parameters = [torch.nn.Parameter(torch.zeros(3))]
    optimizer = hydra.utils.instantiate(cfg.optimizer)(params=parameters)
    assert optimizer.param_groups[0]["lr"] == cfg.optimizer.lr


@pytest.mark.parametrize("name", options("scheduler"))
def test_every_scheduler_builds(name, tmp_path):
    cfg = compose_train(f"scheduler={name}", tmp_path=tmp_path)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = hydra.utils.instantiate(cfg.scheduler)(optimizer=optimizer)
    assert scheduler.optimizer is optimizer


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_configs_are_trainer_arguments(name, tmp_path):
    import lightning.pytorch as pl

    cfg = compose_train(f"trainer={name}", tmp_path=tmp_path)
    arguments = set(inspect.signature(pl.Trainer).parameters)
    assert set(cfg.trainer) - {"_target_"} <= arguments
    if name == "cpu":
        trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
        assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("name", options("logger") + options("callbacks"))
def test_logger_and_callback_configs_build(name, tmp_path):
    group = "logger" if name in options("logger") else "callbacks"
    cfg = compose_train(f"{group}={name}", tmp_path=tmp_path)
    for entry in (cfg[group] or {}).values():
        assert hydra.utils.instantiate(entry) is not None


def test_documented_keys_exist(tmp_path):
    cfg = compose_train("data=mnist", tmp_path=tmp_path)
    for key in ("seed", "train", "test", "ckpt_path", "task_name", "layer.n", "layer.segments",
                "layer.extrapolation", "model.hidden_layers", "model.hidden_width", "model.normalization",
                "data.root", "data.download", "data.batch_size", "data.val_fraction", "data.train_fraction",
                "data.num_workers", "optimizer.lr", "trainer.max_epochs", "trainer.accelerator",
                "trainer.devices"):
        assert OmegaConf.select(cfg, key, default="missing") != "missing", key
    assert compose_train().data.expr == "0.5*cos(1.5*pi/(abs(x)+0.25))"
    mnist = compose_train("data=mnist").data
    assert mnist.download is True and mnist.root == "data"


def test_eval_config_composes():
    cfg = compose_config(["ckpt_path=x.ckpt"], "eval")
    assert cfg.ckpt_path == "x.ckpt" and "data" not in cfg
