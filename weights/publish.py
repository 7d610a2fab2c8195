"""Converts the mmseg checkpoints and publishes them to the Hugging Face Hub.

For each preset of the table (keras_danet/presets/table.py, the manifest) converted from an
OpenMMLab checkpoint (the 16 DANets and the two ImageNet backbones): download the original
.pth, check its sha256 against the hash suffix in its name, convert it, write the preset folder
(config.json, model.weights.h5, metadata.json) and a model card (README.md), then upload the
folder with `huggingface_hub.HfApi().upload_folder`. Ends by writing manifest.json: every
preset's source URL and sha256 and, after an upload, the Hub commit to pin in the table.

    python weights/publish.py --output converted              # all 18, uploaded
    python weights/publish.py --output converted --dry-run    # everything but the upload
    python weights/publish.py --only danet_r50_cityscapes --dry-run --mirror file:///mirror/
"""

import argparse
import json
import logging
import os
import sys

from keras_danet.presets.model_card import model_card as presets_model_card
from keras_danet.presets.resolution import convert_original_checkpoint
from keras_danet.presets.sources import MmsegCheckpoint
from keras_danet.presets.table import ALIASES, PRESETS, checkpoint_url, markdown_table


def model_card(preset, metadata):
    """The preset's Hugging Face model card, with every keras-danet DANet preset listed."""
    aliases = [alias for alias, name in ALIASES.items() if name == preset.name]
    card = presets_model_card(preset, metadata, alias=aliases[0] if aliases else None)
    if preset.architecture != "DANet":
        return card
    listing = f"## All keras-danet presets\n\n{markdown_table()}\n\n## License and citation"
    return card.replace("## License and citation", listing, 1)


def publish(presets, output, mirror=None, dry_run=True, organization=None, progress=True):
    """Converts, documents and (unless `dry_run`) uploads each preset; returns the manifest."""
    manifest = {}
    api = None
    if not dry_run:
        from huggingface_hub import HfApi

        api = HfApi()
    for preset in presets:
        folder = os.path.join(output, preset.name)
        url = checkpoint_url(preset, mirror)
        logging.info("%s: converting %s", preset.name, url)
        metadata = convert_original_checkpoint(preset, url, folder, progress)
        with open(os.path.join(folder, "metadata.json")) as file:
            metadata = json.load(file)  # with the weights' sha256 that save_to_preset added
        with open(os.path.join(folder, "README.md"), "w") as file:
            file.write(model_card(preset, metadata))
        entry = {key: metadata[key] for key in ("source_url", "source_sha256", "weights_sha256")}
        repo = preset.hub.repo
        if organization:
            repo = f"{organization}/{repo.split('/', 1)[1]}"
        entry["hub_repo"] = repo
        if api is not None:
            api.create_repo(repo, exist_ok=True)
            commit = api.upload_folder(
                folder_path=folder,
                repo_id=repo,
                commit_message=f"keras-danet: {preset.name} from {os.path.basename(url)}",
            )
            entry["hub_revision"] = commit.oid
            logging.info("%s: uploaded to %s at %s", preset.name, repo, commit.oid)
        manifest[preset.name] = entry
    with open(os.path.join(output, "manifest.json"), "w") as file:
        json.dump(manifest, file, indent=2)
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="converted", help="folder for the preset folders")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these presets (or aliases)")
    parser.add_argument(
        "--mirror",
        help="base URL replacing https://download.openmmlab.com/mmsegmentation/ (and "
        ".../pretrain/third_party/ for the backbones)",
    )
    parser.add_argument("--organization", help="Hub organisation instead of keras-danet")
    parser.add_argument("--dry-run", action="store_true", help="write everything, upload nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        converted = [p.name for p in PRESETS.values() if isinstance(p.source, MmsegCheckpoint)]
        presets = [PRESETS[name] for name in (args.only or converted)]
    except KeyError as error:
        parser.error(error.args[0])
    try:
        manifest = publish(presets, args.output, args.mirror, args.dry_run, args.organization)
    except Exception as error:  # one clear line for the maintainer, not a traceback
        print(f"publish failed: {error}", file=sys.stderr)
        return 1
    print(
        f"{len(manifest)} presets written to {args.output}"
        + (
            ""
            if args.dry_run
            else "; paste the hub_revision values of manifest.json into "
            "_HUB_REVISIONS in keras_danet/presets/table.py"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
