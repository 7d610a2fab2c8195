"""Sharing a preset folder on the Hugging Face Hub, with a model card."""

import logging
import os

from keras_danet.atomic_files import atomic_write_path
from keras_danet.presets.files import PresetError
from keras_danet.presets.loading import verify_preset_folder
from keras_danet.presets.model_card import model_card
from keras_danet.presets.preset import Preset
from keras_danet.presets.saving import MODEL_CARD_FILE, PRESET_FILES

logger = logging.getLogger("keras_danet")
# Marks a README.md written by keras_danet, which an upload rewrites for the weights it
# uploads; a card the user wrote (no marker) is uploaded as it is.
CARD_MARKER = "<!-- model card written by keras-danet; edit freely (then this line goes) -->"


def upload_preset(uri, folder, *, token=None, private=None, commit_message=None, endpoint=None):
    """Uploads a preset folder to the Hugging Face Hub as `hf://user/repo`; returns the
    handle of the upload, `hf://user/repo@<commit>`, which `from_preset` takes.

    The folder is checked first (complete, every hash right), then given a model card
    (README.md: architecture, dataset and classes, metrics if known, how it was trained,
    license and a usage snippet) unless it holds one you wrote. Only the preset files are
    uploaded. The repo is created if needed (`private` as given); `token` defaults to
    `huggingface-cli login`'s, `endpoint` to $HF_ENDPOINT or huggingface.co.

    Example:
    >>> model.save_to_preset("my_danet", dataset=train)
    >>> keras_danet.upload_preset("hf://my-name/danet-potholes", "my_danet")
    'hf://my-name/danet-potholes@5d0c...'
    """
    # Imported here: huggingface_hub reads its settings (HF_ENDPOINT...) when imported.
    from huggingface_hub import HfApi, errors
    from huggingface_hub.utils import validate_repo_id

    repo = _repo_of(uri)
    try:
        validate_repo_id(repo)
    except errors.HFValidationError as error:
        raise PresetError(f"{uri} does not name a Hub repo: {error}") from None
    folder = os.path.abspath(os.fspath(folder))
    metadata = verify_preset_folder(folder)
    _write_model_card(folder, metadata, uri)

    api = HfApi(endpoint=endpoint, token=token)
    try:
        api.create_repo(repo, private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=folder,
            repo_id=repo,
            allow_patterns=list(PRESET_FILES),
            commit_message=commit_message
            or f"keras-danet preset {metadata.get('preset') or ''}".strip(),
        )
    except (errors.HfHubHTTPError, OSError) as error:
        reason = " ".join(str(error).split())[:400]
        raise PresetError(f"Could not upload {folder} to {uri}: {reason}") from error
    handle = f"hf://{repo}@{commit.oid}"
    logger.info("Uploaded %s to %s", folder, handle)
    return handle


def _repo_of(uri):
    uri = os.fspath(uri)
    if not isinstance(uri, str) or not uri.startswith("hf://"):
        raise PresetError(f"Upload to hf://user/repo, not {uri!r}.")
    repo = uri.removeprefix("hf://")
    if "@" in repo:
        raise PresetError(f"{uri}: an upload makes a new commit; name the repo without a revision.")
    if repo.count("/") != 1:
        raise PresetError(f"{uri}: a Hub repo is hf://user/repo (or hf://org/repo).")
    return repo


def _write_model_card(folder, metadata, uri):
    path = os.path.join(folder, MODEL_CARD_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as file:
            if CARD_MARKER not in file.read():
                logger.info("%s: your own model card, uploaded as it is", path)
                return
    preset = Preset.from_folder(folder)
    card = model_card(preset, metadata, handle=uri)
    with atomic_write_path(path) as partial, open(partial, "w", encoding="utf-8") as file:
        file.write(card.replace("\n# ", f"\n{CARD_MARKER}\n\n# ", 1))
