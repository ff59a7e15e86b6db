"""The one table of data-set names: every harness's data sets are in it under their harness names, any spelling
finds them, a harness refuses another harness's data set naming its own, and no spelling names two data sets."""
from __future__ import annotations

import pytest

from transfer.dataset_names import DATASETS, DatasetName, display_name, find_dataset, spelling_index
from transfer.few_shot.datasets import LAYOUTS as FEW_SHOT_LAYOUTS
from transfer.few_shot.datasets import canonical_name as few_shot_name
from transfer.linear_probe.datasets import LAYOUTS as PROBE_LAYOUTS
from transfer.linear_probe.datasets import canonical_name as probe_name


def test_every_harness_data_set_is_in_the_table_under_its_harness_name():
    for key in (*PROBE_LAYOUTS, *FEW_SHOT_LAYOUTS):
        assert find_dataset(key) is not None and find_dataset(key).name == key


@pytest.mark.parametrize("spelling, name", [("CIFAR-10", "cifar10"), ("cifar_100", "cifar100"), ("Flowers", "flowers102"),
                                            ("Oxford-IIIT-Pet", "oxford_pets"), ("Stanford Cars", "stanford_cars"),
                                            ("FGVCAircraft", "fgvc_aircraft"), ("Fashion-MNIST", "fashion_mnist"),
                                            ("image_folder", "imagefolder")])
def test_probe_spellings(spelling, name):
    assert probe_name(spelling) == name


@pytest.mark.parametrize("spelling, name", [("CropDiseases", "cropdisease"), ("cropd", "cropdisease"),
                                            ("ISIC", "isic2018"), ("chest_x", "chestx"), ("EuroSAT", "eurosat"),
                                            ("fashionmnist", "fashion_mnist")])
def test_few_shot_spellings(spelling, name):
    assert few_shot_name(spelling) == name


def test_another_harness_data_set_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown few-shot data set 'CIFAR-10'; known: \['chestx', "):
        few_shot_name("CIFAR-10")
    with pytest.raises(ValueError, match=r"unknown linear-probe data set 'isic'; known: \['cifar10', "):
        probe_name("isic")


def test_labels():
    assert [display_name(n) for n in ("oxford_pets", "isic2018", "CIFAR-100")] == ["Pets", "ISIC", "CIFAR-100"]
    assert display_name("fashion_mnist_novel") == "fashion_mnist_novel"  # not in the table: as is


def test_a_spelling_names_one_data_set_only():
    assert len(spelling_index(DATASETS)) == sum(1 + len(d.aliases) for d in DATASETS)
    with pytest.raises(ValueError, match="'Cars' names both 'stanford_cars' and 'cars196'"):
        spelling_index((*DATASETS, DatasetName("cars196", "Cars196", aliases=("Cars",))))
