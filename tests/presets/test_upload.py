"""Sharing a fine-tune: `upload_preset` through the real huggingface_hub client, against a
local stand-in of the Hub's upload API (tests/presets/hub_stand_in.py); nothing leaves the
machine."""

import os

import numpy as np
import pytest

from keras_danet import DANet, PresetError, upload_preset
from keras_danet.dataset_info import DatasetInfo
from keras_danet.presets.saving import PRESET_FILES
from keras_danet.presets.upload import CARD_MARKER
from tests.conftest import to_numpy
from tests.presets.hub_stand_in import HubStandIn

TOKEN = "hf_stand_in_token"
POTHOLES = DatasetInfo(
    name="potholes",
    title="Potholes",
    class_names=("road", "pothole", "kerb"),
    palette=((128, 64, 128), (255, 0, 0), (0, 0, 255)),
)


@pytest.fixture(scope="module")
def fine_tune(tmp_path_factory):
    """A fine-tune's preset folder, as a user's notebook would save it."""
    model = DANet.from_preset("danet_demo_shapes", num_classes=3)
    folder = tmp_path_factory.mktemp("fine_tune") / "danet_potholes"
    model.save_to_preset(
        folder,
        dataset=POTHOLES,
        metadata={"training": {"epochs": 3, "crop": [96, 144]}, "license": "CC-BY-4.0"},
    )
    return model, folder


def test_upload_writes_a_model_card_and_sends_the_preset_files(fine_tune, tmp_path):
    model, folder = fine_tune
    with HubStandIn(tmp_path / "hub", TOKEN) as hub:
        handle = upload_preset(
            "hf://me/danet-potholes", folder, token=TOKEN, private=True, endpoint=hub.endpoint
        )
    (oid,) = hub.repos["me/danet-potholes"]["commits"]
    assert handle == f"hf://me/danet-potholes@{oid}"
    assert hub.repos["me/danet-potholes"]["private"] is True
    stored = tmp_path / "hub" / "me" / "danet-potholes" / oid
    assert sorted(os.listdir(stored)) == sorted(PRESET_FILES)
    for name in PRESET_FILES:
        assert (stored / name).read_bytes() == (folder / name).read_bytes(), name

    card = (stored / "README.md").read_text()
    # A new preset, not the demo it started from.
    assert "\n# danet_potholes\n" in card and "Synthetic street scenes" not in card
    assert card.startswith("---\nlicense: cc-by-4.0\nlibrary_name: keras\n")
    assert "datasets: [potholes]" in card and CARD_MARKER in card
    assert 'keras_danet.DANet.from_preset("hf://me/danet-potholes")' in card
    assert "| fine-tuned from | danet_demo_shapes |" in card
    assert "| training | epochs: 3, crop: [96, 144] |" in card
    assert "`road`, `pothole`, `kerb`" in card
    assert "ResNet-V1c-50-D8 backbone (stem_channels=8, base_channels=4, head_channels=16)" in card
    (front,) = hub.card_metadata  # the front matter, parsed as the Hub parses it
    assert front["license"] == "cc-by-4.0" and front["library_name"] == "keras"
    assert front["pipeline_tag"] == "image-segmentation" and "keras-danet" in front["tags"]

    # What was uploaded is a working preset: the same numbers as the model that was saved.
    images = np.random.default_rng(0).uniform(0, 255, (1, 48, 64, 3)).astype("float32")
    loaded = DANet.from_preset(str(stored))
    np.testing.assert_array_equal(to_numpy(loaded(images)), to_numpy(model(images)))
    assert loaded.preset_metadata["class_names"] == list(POTHOLES.class_names)


def test_a_card_you_wrote_is_uploaded_as_it_is(fine_tune, tmp_path):
    _, folder = fine_tune
    own = tmp_path / "own"
    own.mkdir()
    for name in ("config.json", "model.weights.h5", "metadata.json"):
        (own / name).write_bytes((folder / name).read_bytes())
    (own / "README.md").write_text("# My potholes model\n")
    (own / "notes.txt").write_text("not a preset file")
    with HubStandIn(tmp_path / "hub", TOKEN) as hub:
        upload_preset("hf://me/mine", own, token=TOKEN, endpoint=hub.endpoint)
    (oid,) = hub.repos["me/mine"]["commits"]
    stored = tmp_path / "hub" / "me" / "mine" / oid
    assert (stored / "README.md").read_text() == "# My potholes model\n"
    assert not (stored / "notes.txt").exists()  # only the preset files go up


def test_bad_repos_and_damaged_folders_are_refused_before_any_request(fine_tune, tmp_path):
    _, folder = fine_tune
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("config.json", "metadata.json"):
        (damaged / name).write_bytes((folder / name).read_bytes())
    (damaged / "model.weights.h5").write_bytes((folder / "model.weights.h5").read_bytes()[:-10])
    with HubStandIn(tmp_path / "hub", TOKEN) as hub:
        for uri, message in (
            ("me/repo", "Upload to hf://user/repo"),
            ("hf://me/repo@main", "name the repo without a revision"),
            ("hf://me/a/b", "a Hub repo is hf://user/repo"),
            ("hf://me/bad name", "does not name a Hub repo"),
        ):
            with pytest.raises(PresetError, match=message):
                upload_preset(uri, folder, token=TOKEN, endpoint=hub.endpoint)
        with pytest.raises(PresetError, match="model.weights.h5 has sha256"):
            upload_preset("hf://me/repo", damaged, token=TOKEN, endpoint=hub.endpoint)
        with pytest.raises(PresetError, match="not a complete preset folder"):
            upload_preset("hf://me/repo", tmp_path, token=TOKEN, endpoint=hub.endpoint)
    assert hub.requests == []


def test_a_refused_token_is_a_clear_error(fine_tune, tmp_path):
    _, folder = fine_tune
    refused = pytest.raises(PresetError, match="Could not upload .* to hf://me/repo: .*401")
    with HubStandIn(tmp_path / "hub", TOKEN) as hub, refused:
        upload_preset("hf://me/repo", folder, token="hf_wrong", endpoint=hub.endpoint)
    assert hub.repos == {}


def test_a_save_under_a_new_name_is_a_new_preset(tmp_path):
    import json

    copy = DANet.from_preset("danet_demo_shapes").save_to_preset(tmp_path / "my_copy")
    with open(os.path.join(copy, "metadata.json")) as file:
        metadata = json.load(file)
    assert metadata["preset"] == "my_copy" and metadata["pretrained"] == "danet_demo_shapes"
    assert "miou" not in metadata and "description" not in metadata  # the demo's, not these
    assert metadata["class_names"] == ["sky", "road", "grass", "object"]  # same classifier


def test_model_card_front_matter_stays_valid_yaml_for_any_metric():
    import yaml

    from keras_danet.presets import Preset
    from keras_danet.presets.model_card import model_card

    preset = Preset(
        name="odd: name",
        architecture="DANet",
        config={"depth": 50},
        source=DANet.presets["danet_demo_shapes"].source,
        dataset=POTHOLES,
        metrics={"aAcc: x, y": 91.5, "note": "n/a", "mIoU": 70},
        license="other",
    )
    card = model_card(preset, {"source_url": "https://example.org/w.pth"})
    front = yaml.safe_load(card.split("---\n", 2)[1])
    assert front["model-index"][0]["name"] == "odd: name"
    metrics = front["model-index"][0]["results"][0]["metrics"]
    assert [m["name"] for m in metrics] == ["aAcc: x, y", "mIoU (single scale)"]
    assert front["license"] == "other" and front["license_link"] == "https://example.org/w.pth"
    assert "| note | n/a |" in card
