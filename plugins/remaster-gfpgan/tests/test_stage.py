"""The gfpgan stage end to end: loading, faces found and reported, what changes and what must not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from remaster import Remasterer, StageError, WeightsNotFoundError, io
from remaster.plugin.host import get_host
from remaster_gfpgan.stage import FaceRestorer, GFPGANStage, load_restorer


class IdentityRestorer:
    """Stands in for the network where a test is about geometry, not restoration (and 10 s faster)."""

    kind = "identity"
    size = 512

    def to(self, device):
        pass

    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        return faces.clone()


class InvertingRestorer(IdentityRestorer):
    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        return 1.0 - faces


def stage_with(restorer, **params) -> GFPGANStage:
    """The registered gfpgan stage with ``restorer`` in place of the network."""
    spec = get_host().stages.get("gfpgan")
    stage = GFPGANStage(**spec.resolve_params({"detector": "haar", "mask": "feather", **params}))
    stage.spec = spec
    stage._restorer = restorer  # prepare() builds the detector and background, keeps this
    return stage


def test_official_checkpoint_layout_loads_with_spandrel(gfpgan_checkpoint):
    raw = torch.load(gfpgan_checkpoint, weights_only=True)
    assert list(raw) == ["params_ema"]
    descriptor = load_restorer(gfpgan_checkpoint)
    assert descriptor.architecture.id == "GFPGAN"
    ours = descriptor.model.state_dict()
    assert set(ours) == set(raw["params_ema"])
    assert all(torch.equal(ours[k], raw["params_ema"][k]) for k in ours)


def test_the_aligned_face_size_is_the_networks(gfpgan_checkpoint, tiny_restorer, astronaut, tmp_path):
    from spandrel.architectures.RestoreFormer import RestoreFormer

    assert FaceRestorer(load_restorer(gfpgan_checkpoint)).size == 512  # spandrel: GFPGAN's minimum size
    small_restoreformer = tmp_path / "RestoreFormer.pth"  # spandrel reads its layout from the file
    torch.save({"params_ema": RestoreFormer(n_embed=16, embed_dim=32, ch=32, ch_mult=(1, 1), num_res_blocks=1,
                                            z_channels=32).state_dict()}, small_restoreformer)
    assert FaceRestorer(load_restorer(small_restoreformer)).size == 512  # spandrel states none: FFHQ's size
    assert tiny_restorer.size == 64
    result = Remasterer([stage_with(tiny_restorer)], precision="fp32").prepare().run_image(io.load(astronaut))
    assert result.meta.extras["faces"] == 1
    diff = np.abs(io.to_numpy(result).astype(int) - astronaut.astype(int)).max(axis=2)
    assert diff[110, 225] > 0 and diff[400, 100] == 0  # restored at 64 px, pasted back over the face only


def test_an_upscaler_checkpoint_is_refused_as_a_face_model(tmp_path):
    from spandrel.architectures.ESRGAN import ESRGAN as RRDBNet

    path = tmp_path / "x4.pth"
    torch.save({"params_ema": RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4).state_dict()}, path)
    with pytest.raises(StageError, match="not GFPGAN or RestoreFormer"):
        load_restorer(path)


def test_missing_weights_stop_prepare_with_the_command_to_run(private_cache):
    with pytest.raises(WeightsNotFoundError) as caught:
        Remasterer(["gfpgan"]).prepare()
    assert "remaster weights fetch gfpgan-1.4" in str(caught.value)
    assert "remaster weights import" in str(caught.value)


def test_identity_restoration_pastes_the_face_back_in_place_and_leaves_the_rest(astronaut):
    stage = stage_with(IdentityRestorer())
    remasterer = Remasterer([stage]).prepare()
    result = remasterer.run_image(io.load(astronaut))
    assert {k: result.meta.extras[k] for k in ("faces_found", "faces", "face_detector")} == {
        "faces_found": 1, "faces": 1, "face_detector": "haar"}
    out = io.to_numpy(result)
    diff = np.abs(out.astype(int) - astronaut.astype(int)).max(axis=2)
    # The face went out to 512×512 and back: only resampling blur at sharp edges (eyes, hair line);
    # a face pasted one pixel off would double the mean (test_geometry checks the placement exactly).
    assert diff[95:135, 200:250].mean() < 5
    changed = np.argwhere(diff > 0)
    # nothing outside the face's aligned square changes (it spans about x 150-300, y 40-200 here)
    assert changed[:, 0].min() >= 10 and changed[:, 0].max() < 230
    assert changed[:, 1].min() > 130 and changed[:, 1].max() < 320


def test_restored_pixels_go_where_the_face_is(astronaut):
    out = Remasterer([stage_with(InvertingRestorer())]).prepare().run(astronaut)
    diff = np.abs(out.astype(int) - astronaut.astype(int)).max(axis=2)
    assert diff[110, 225] > 100  # between the eyes: inverted
    assert diff[400, 100] == 0 and diff[20, 20] == 0


def test_upscale_pastes_faces_on_the_upscaled_background(astronaut):
    small = astronaut[0:256, 100:356]
    stage = stage_with(InvertingRestorer(), upscale=2.0, background="lanczos")
    result = Remasterer([stage]).prepare().run_image(io.load(small))
    out = io.to_numpy(result)
    assert out.shape == (512, 512, 3)
    background = Remasterer(["lanczos(scale=2)"]).run(small)
    diff = np.abs(out.astype(int) - background.astype(int)).max(axis=2)
    assert diff[0:20].max() == 0 and diff[-20:].max() == 0  # away from the face: the upscaler's pixels exactly
    assert diff[2 * 110, 2 * (225 - 100)] > 100  # the face: restored (inverted) pixels


def test_no_face_returns_the_image_unchanged_and_says_so():
    flat = np.full((120, 160, 3), 128, np.uint8)
    result = Remasterer([stage_with(InvertingRestorer())]).prepare().run_image(io.load(flat))
    assert result.meta.extras["faces"] == 0 and result.meta.extras["faces_found"] == 0
    assert np.array_equal(io.to_numpy(result), flat)


def test_weight_zero_returns_the_input_exactly(astronaut, gfpgan_checkpoint):
    remasterer = Remasterer([f"gfpgan(model={str(gfpgan_checkpoint)!r}, weight=0.0, detector='haar')"]).prepare()
    result = remasterer.run_image(io.load(astronaut))
    assert np.array_equal(io.to_numpy(result), astronaut)
    assert result.meta.extras["faces"] == 1  # found and counted; the blend simply keeps none of it


def test_sixteen_bit_gray_stays_sixteen_bit_gray(astronaut):
    gray16 = (astronaut.mean(axis=2) * 257).astype(np.uint16)
    out = Remasterer([stage_with(InvertingRestorer())]).prepare().run(gray16)
    assert out.dtype == np.uint16 and out.shape == gray16.shape
    diff = np.abs(out.astype(int) - gray16.astype(int))
    assert diff[110, 225] > 100 * 257 and diff[400, 100] == 0


def test_alpha_is_kept(astronaut):
    rgba = np.dstack([astronaut, np.tile(np.linspace(0, 255, 512, dtype=np.uint8), (512, 1))])
    out = Remasterer([stage_with(InvertingRestorer())]).prepare().run(rgba)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])


def test_only_center_face_keeps_one_face():
    stage = stage_with(IdentityRestorer(), only_center_face=True)
    from remaster_gfpgan.geometry import Face

    faces = [Face((0, 0, 40, 40), np.zeros((5, 2), np.float32)), Face((80, 60, 120, 100), np.zeros((5, 2), np.float32))]
    selected = stage._select(faces, np.zeros((160, 200, 3), np.float32))
    assert selected["kept"] == [faces[1]] and len(selected["all"]) == 2


@pytest.mark.slow
def test_the_real_network_restores_the_face_and_only_the_face(face_photo, gfpgan_checkpoint):
    photo = io.to_numpy(io.load(face_photo))
    remasterer = Remasterer([f"gfpgan(model={str(gfpgan_checkpoint)!r}, detector='haar', mask='feather')"])
    result = remasterer.prepare().run_image(io.load(face_photo))
    assert result.meta.extras["faces"] == 1
    out = io.to_numpy(result)
    diff = np.abs(out.astype(int) - photo.astype(int)).max(axis=2)
    assert diff[110, 125] > 0 and diff[240:, :].max() == 0 and diff[:, :20].max() == 0


def test_the_restorer_maps_unit_range_to_unit_range(gfpgan_checkpoint):
    restorer = FaceRestorer(load_restorer(gfpgan_checkpoint))
    assert restorer.kind == "GFPGAN"


@pytest.mark.slow
def test_parsing_mask_and_resnet50_retinaface_come_from_the_weights_manager(
        astronaut, tmp_path, private_cache, accept_as_official):
    pytest.importorskip("facexlib", reason="facexlib is installed by make install (requirements-nodeps.txt)")
    from facexlib.detection.retinaface import RetinaFace
    from facexlib.parsing.parsenet import ParseNet

    from remaster.weights import get_manager

    torch.manual_seed(0)
    files = {"parsenet": tmp_path / "parsing_parsenet.pth",
             "retinaface-resnet50": tmp_path / "detection_Resnet50_Final.pth"}
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(), files["parsenet"])
    with pytest.warns(UserWarning):  # facexlib's resnet50(pretrained=False)
        torch.save(RetinaFace("resnet50", device=torch.device("cpu")).state_dict(), files["retinaface-resnet50"])
    for name, file in files.items():
        accept_as_official(name, file)
        get_manager().import_file(file)

    stage = stage_with(IdentityRestorer(), detector="auto", mask="auto", only_center_face=True)
    result = Remasterer([stage]).prepare().run_image(io.load(astronaut))
    assert stage._parser is not None  # mask=auto picked the parsing mask: its weights are cached
    assert result.meta.extras["face_detector"] == "retinaface"  # auto prefers ResNet-50 RetinaFace when cached
    assert result.meta.extras["faces"] <= 1


@pytest.mark.parametrize("precision", ["bf16", "fp32", "auto"])
def test_the_background_chooses_its_own_precision(astronaut, precision):
    """Issue 12, item 1: under bf16 the face stage handed 'bf16' to a lanczos background, which failed the run."""
    small = astronaut[0:64, 100:164]
    stage = stage_with(InvertingRestorer(), upscale=2.0, background="lanczos")
    result = Remasterer([stage], device="cpu", precision=precision).prepare().run_image(io.load(small))
    assert result.size == (128, 128)
    assert result.meta.extras["background_stages"] == [
        {"stage": "lanczos(scale=2.0)", "device": "cpu", "precision": "fp32"}]
    if precision != "auto":  # the face stage itself supports both, so an explicit request holds
        assert result.meta.extras["stages"][0]["precision"] == precision


def test_the_background_pipeline_is_built_on_the_outer_remasterers_host(astronaut):
    """Issue 13: the background was built on the process-wide host, not the one the Remasterer was given."""
    import dataclasses

    from remaster import hookimpl
    from remaster.plugin.host import PluginHost

    nearest = get_host().stages.get("nearest")

    class PrivateUpscaler:  # a background stage only this host knows
        @hookimpl
        def remaster_register_stages(self, register):
            register(dataclasses.replace(nearest, name="private.nearest", plugin=""))

    host = PluginHost(load_entry_points=False, extra_plugins=(PrivateUpscaler(),)).ensure_loaded()
    stage = stage_with(InvertingRestorer(), upscale=2.0, background="private.nearest")
    outer = Remasterer([stage], host=host, device="cpu", precision="fp32", tile=0).prepare()
    assert stage._background.host is outer.host
    assert stage._background.tile == 0  # the outer pipeline's tiling and limits hold inside too
    result = outer.run_image(io.load(astronaut[0:64, 100:164]))
    assert result.size == (128, 128)
    assert result.meta.extras["background_stages"][0]["stage"] == "private.nearest(scale=2.0)"
