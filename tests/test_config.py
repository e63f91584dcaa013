"""Typed params: unknown keys, wrong types and unknown names are errors naming the key."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from csl.errors import ConfigError
from csl.params import load_params, parse_params
from conftest import REPO, tiny_params


def raw() -> dict:
    return tiny_params(Path("/nonexistent"))


def test_repository_params_yaml_is_valid() -> None:
    p = load_params(REPO / "params.yaml")
    assert p.variants and all(v in p.methods for v in p.variants)
    cfg = p.selected[0].config
    assert cfg.method == "simclr" and cfg.parts["loss"].name == "nt_xent"


PRESETS = sorted((REPO / "configs").glob("cifar10-*-resnet18.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_cifar_preset_is_valid(path: Path) -> None:
    """Every GPU recipe parses strictly, is a ResNet-18 with the CIFAR stem, and cites the
    published linear top-1 it reached."""
    p = load_params(path)
    cfg = p.selected[0].config
    assert cfg.parts["encoder"].config.depth == 18 and cfg.parts["encoder"].config.cifar_stem
    assert re.search(r"linear top-1 .*\d\d\.\d+%", path.read_text())


def test_every_zoo_method_has_a_cifar_preset() -> None:
    methods = {load_params(p).selected[0].config.method for p in PRESETS}
    assert {"simclr", "moco_v2", "moco_v3", "byol", "simsiam", "swav", "barlow_twins", "dino", "supcon"} <= methods


def test_unknown_top_level_key() -> None:
    r = raw()
    r["dataa"] = {}
    with pytest.raises(ConfigError, match="unknown key 'dataa'"):
        parse_params(r)


def test_unknown_nested_key_names_full_path() -> None:
    r = raw()
    r["methods"]["simclr-tiny"]["train"]["epochz"] = 3
    with pytest.raises(ConfigError, match=r"unknown key 'methods.simclr-tiny.train.epochz'"):
        parse_params(r)


def test_unknown_component_key() -> None:
    r = raw()
    r["methods"]["simclr-tiny"]["loss"]["temprature"] = 0.1
    with pytest.raises(ConfigError, match=r"methods.simclr-tiny.loss.temprature"):
        parse_params(r)


@pytest.mark.parametrize("path,value,message", [
    (("train", "epochs"), "ten", "must be an integer"),
    (("train", "epochs"), 2.5, "must be an integer"),
    (("loss", "temperature"), "hot", "must be a number"),
    (("train", "channels_last"), "yes", "must be true or false"),
    (("train", "precision"), "fp8", "must be one of"),
    (("optimizer", "name"), "adam", "must be one of 'sgd' | 'lars' | 'adamw'"),
])
def test_wrong_types_name_the_key(path: tuple[str, str], value: object, message: str) -> None:
    r = raw()
    r["methods"]["simclr-tiny"][path[0]][path[1]] = value
    with pytest.raises(ConfigError, match=message) as e:
        parse_params(r)
    assert f"methods.simclr-tiny.{path[0]}.{path[1]}" in str(e.value)


def test_int_is_accepted_for_float() -> None:
    r = raw()
    r["methods"]["simclr-tiny"]["loss"]["temperature"] = 1
    assert parse_params(r).variant("simclr-tiny").config.parts["loss"].config.temperature == 1.0


def test_unknown_method_lists_valid_names() -> None:
    r = raw()
    r["methods"]["simclr-tiny"]["method"] = "simclrr"
    with pytest.raises(ConfigError, match=r"unknown method 'simclrr'.*valid names: barlow_twins, byol, clae, cpc, dim, dino, imix, imix_moco, kcl, mochi, moco_v2, moco_v3, pcl, simclr, simsiam, supcon, swav"):
        parse_params(r)


@pytest.mark.parametrize("part,kind,valid", [
    ("encoder", "encoder", "amdim, patch_grid, resnet, small_cnn"),
    ("loss", "loss", "amdim_nce, barlow_twins, byol, cpc_infonce, dcl, dino, hcl, imix_npair, info_nce, negative_cosine, nt_xent, supcon, swav"),
    ("augment", "augmentation", "amdim, byol, cpc, dino, moco_v2, simclr, swav, views"),
    ("extract", "extractor", "dino_head, identity, mlp_projection"),
    ("similarity", "similarity", "cosine, dot"),
])
def test_unknown_component_lists_valid_names(part: str, kind: str, valid: str) -> None:
    r = raw()
    r["methods"]["simclr-tiny"][part] = {"name": "nope"}
    with pytest.raises(ConfigError, match=rf"unknown {kind} 'nope' at 'methods.simclr-tiny.{part}.name'; "
                                          rf"valid names: {valid}"):
        parse_params(r)


def test_variant_must_be_defined() -> None:
    r = raw()
    r["variants"] = ["simclr-tiny", "ghost"]
    with pytest.raises(ConfigError, match=r"'variants\[1\]' is 'ghost'"):
        parse_params(r)


def test_values_are_validated() -> None:
    r = raw()
    r["methods"]["simclr-tiny"]["augment"]["crop_scale"] = [0.9, 0.1]
    with pytest.raises(ConfigError, match="crop_scale"):
        parse_params(r)
    r = raw()
    r["methods"]["simclr-tiny"]["loss"]["temperature"] = -1
    with pytest.raises(ConfigError, match="temperature' must be > 0"):
        parse_params(r)


def test_overrides(tmp_path: Path) -> None:
    f = tmp_path / "params.yaml"
    f.write_text(yaml.safe_dump(raw()))
    p = load_params(f, ["methods.simclr-tiny.train.epochs=7", "methods.simclr-tiny.loss.temperature=0.2"])
    cfg = p.variant("simclr-tiny").config
    assert cfg.train.epochs == 7 and cfg.parts["loss"].config.temperature == 0.2
    with pytest.raises(ConfigError, match="unknown key 'methods.simclr-tiny.trian'"):
        load_params(f, ["methods.simclr-tiny.trian.epochs=7"])
    with pytest.raises(ConfigError, match="methods.simclr-tiny.train.epochs' must be an integer"):
        load_params(f, ["methods.simclr-tiny.train.epochs=many"])
    with pytest.raises(ConfigError, match="unknown key 'methods.simclr-tiny.train.epoch'"):
        load_params(f, ["methods.simclr-tiny.train.epoch=2"])
    with pytest.raises(ConfigError, match="must look like key.path=value"):
        load_params(f, ["epochs"])


def test_resolved_config_round_trips() -> None:
    p = parse_params(copy.deepcopy(raw()))
    again = parse_params({**p.as_dict(), "methods": p.as_dict()["methods"]})
    assert again.as_dict() == p.as_dict()
