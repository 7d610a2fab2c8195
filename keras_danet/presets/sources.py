"""Where a preset's weights come from: one small record per kind of source.

A `Preset` names one of these; `keras_danet.presets.loading` knows how to get each:
- `MmsegCheckpoint`: an OpenMMLab `.pth` file, downloaded, checked by hash and converted;
- `BundledFolder`: a preset folder inside the package (works offline);
- `HubRepo`: a preset folder on the Hugging Face Hub at a revision;
- `LocalFolder`: a preset folder on disk (what `save_to_preset` writes).
"""

import dataclasses
import os

OPENMMLAB_DOWNLOAD = "https://download.openmmlab.com/"
MMSEG_ROOT = OPENMMLAB_DOWNLOAD + "mmsegmentation/"
# mmengine's open-mmlab:// scheme (mmengine/hub/openmmlab.json) resolves here.
PRETRAIN_ROOT = OPENMMLAB_DOWNLOAD + "pretrain/third_party/"
BUNDLED_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundled")


@dataclasses.dataclass(frozen=True)
class MmsegCheckpoint:
    """An OpenMMLab checkpoint at `root + path`, whose sha256 starts with `sha256_prefix`.

    OpenMMLab's publish script (and torch.hub's convention) end the file name with the first
    8 hex digits of the file's sha256, so the name itself says what to verify.
    """

    path: str
    root: str = MMSEG_ROOT

    @property
    def file_name(self):
        return self.path.rsplit("/", 1)[-1]

    @property
    def sha256_prefix(self):
        return self.file_name.removesuffix(".pth").rsplit("-", 1)[1]

    def url(self, mirror=None):
        """The URL, or its copy under `mirror` (a base URL that replaces `root`)."""
        return (mirror.rstrip("/") + "/" if mirror else self.root) + self.path

    def describe(self):
        return {"kind": "mmseg_checkpoint", "url": self.url()}


@dataclasses.dataclass(frozen=True)
class BundledFolder:
    """A preset folder shipped inside the package, under `keras_danet/presets/bundled/`."""

    name: str

    @property
    def folder(self):
        return os.path.join(BUNDLED_ROOT, self.name)

    def describe(self):
        return {"kind": "bundled", "folder": self.name}


@dataclasses.dataclass(frozen=True)
class HubRepo:
    """A preset folder on the Hugging Face Hub; `revision` a 40-hex commit once published."""

    repo: str
    revision: str = "main"

    @property
    def handle(self):
        return f"hf://{self.repo}" + (f"@{self.revision}" if self.revision != "main" else "")

    def describe(self):
        return {"kind": "hub", "repo": self.repo, "revision": self.revision}


@dataclasses.dataclass(frozen=True)
class LocalFolder:
    """A preset folder on disk, such as one `save_to_preset` wrote."""

    path: str

    def describe(self):
        return {"kind": "folder", "path": os.path.abspath(self.path)}
