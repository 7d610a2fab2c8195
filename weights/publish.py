"""Converts the mmseg DANet checkpoints and publishes them to the Hugging Face Hub.

For each preset of the table (keras_danet/presets/table.py, the manifest): download the
original .pth, check its sha256 against the hash suffix in its name, convert it, write the
preset folder (config.json, model.weights.h5, metadata.json) and a model card (README.md), then
upload the folder with `huggingface_hub.HfApi().upload_folder`. Ends by writing manifest.json:
every preset's source URL and sha256 and, after an upload, the Hub commit to pin in the table.

    python weights/publish.py --output converted              # all 16, uploaded
    python weights/publish.py --output converted --dry-run    # everything but the upload
    python weights/publish.py --only danet_r50_cityscapes --dry-run --mirror file:///mirror/
"""

import argparse
import json
import logging
import os
import sys

from keras_danet.presets.loading import convert_original_checkpoint
from keras_danet.presets.table import ALIASES, PRESETS, checkpoint_url, markdown_table

CITATION = """@inproceedings{fu2019dual,
  title={Dual Attention Network for Scene Segmentation},
  author={Fu, Jun and Liu, Jing and Tian, Haijie and Li, Yong and Bao, Yongjun and Fang, Zhiwei and Lu, Hanqing},
  booktitle={CVPR},
  year={2019}
}"""  # noqa: E501


def model_card(preset, metadata):
    """A Hugging Face model card: YAML front matter (license, tags, model-index) and prose."""
    aliases = [alias for alias, name in ALIASES.items() if name == preset.name]
    metrics = [f"      - {{type: mean_iou, value: {preset.miou}, name: mIoU (single scale)}}"]
    if preset.miou_ms_flip:
        metrics.append(
            f"      - {{type: mean_iou, value: {preset.miou_ms_flip}, "
            "name: mIoU (multi-scale + flip)}"
        )
    mode = preset.test_mode
    if mode == "slide":
        crop, stride = preset.slide_crop, preset.slide_stride
        mode = f"slide, {crop[0]}x{crop[1]} windows every {stride[0]} px"
    lines = [
        "---",
        "license: apache-2.0",
        "library_name: keras",
        "pipeline_tag: image-segmentation",
        "tags: [keras, keras-danet, danet, semantic-segmentation, mmsegmentation]",
        f"datasets: [{preset.dataset.name}]",
        "model-index:",
        f"  - name: {preset.name}",
        "    results:",
        "    - task: {type: image-segmentation, name: Semantic Segmentation}",
        f"      dataset: {{name: {preset.dataset.title}, type: {preset.dataset.name}, split: val}}",
        "      metrics:",
        *[line[2:] for line in metrics],
        "---",
        "",
        f"# {preset.name}",
        "",
        f"DANet R{preset.depth}-D8 for {preset.dataset.title} ({preset.num_classes} classes), "
        "converted from mmsegmentation's checkpoint to Keras 3 by "
        "[keras-danet](https://github.com/keras-danet/keras-danet). It runs on TensorFlow, JAX "
        "and PyTorch and reproduces mmsegmentation's outputs.",
        "",
        "```python",
        "import keras, keras_danet",
        f'model = keras_danet.DANet.from_preset("{aliases[0] if aliases else preset.name}")',
        'labels = model.predict(keras.utils.img_to_array(keras.utils.load_img("image.png"))[None]).argmax(-1)',  # noqa: E501
        "```",
        "",
        "| | |",
        "|---|---|",
        f"| mIoU (single scale) | {preset.miou:.2f} |",
        f"| mIoU (multi-scale + flip) | {preset.miou_ms_flip or '–'} |",
        f"| training | {preset.crop_size[0]}x{preset.crop_size[1]} crops, "
        f"{preset.iterations} iterations, batch {preset.batch_size} |",
        f"| test mode | {mode} |",
        f"| align_corners | {preset.align_corners} |",
        f"| mmseg config | `{preset.mmseg_config}` |",
        f"| source | {metadata['source_url']} |",
        f"| source sha256 | `{metadata['source_sha256']}` |",
        f"| weights sha256 | `{metadata['weights_sha256']}` |",
        "",
        "mIoU figures are mmsegmentation's, on the validation set.",
        "",
        "## All keras-danet presets",
        "",
        markdown_table(),
        "",
        "## License and citation",
        "",
        "Apache-2.0, as mmsegmentation, whose checkpoint this is.",
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    return "\n".join(lines)


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
        repo = preset.hub_repo
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
        "--mirror", help="base URL replacing https://download.openmmlab.com/mmsegmentation/"
    )
    parser.add_argument("--organization", help="Hub organisation instead of keras-danet")
    parser.add_argument("--dry-run", action="store_true", help="write everything, upload nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        presets = [PRESETS[name] for name in (args.only or list(PRESETS))]
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
            "keras_danet/presets/table.py"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
