"""Every loader a user's file reaches either loads it or raises AvatarError (issue 13, part 5).

The inputs that crashed a loader under benchmarks/fuzz_loaders.py, remade here from a valid
file each test writes itself, plus a sanity set: every valid file truncated at each eighth
of its length and with a byte flipped there. Offline, CPU, a few seconds.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile

import numpy as np
import pytest

from avatar.errors import AvatarError

FPS = 25.0
T = 8  # frames of the tiny files


# -- valid tiny files, written by the engine's own writers -------------------------------------
def write_image(folder):
    from PIL import Image

    from avatar.image import bundled_portrait

    path = folder / "face.jpg"
    Image.open(bundled_portrait()).convert("RGB").resize((80, 96)).save(path, quality=60)
    return path


def write_audio(folder):
    from avatar.audio.io import save_wav
    from avatar.audio.types import Audio

    path = folder / "speech.wav"
    t = np.arange(2400) / 16000
    save_wav(Audio((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000), path)
    return path


def write_video(folder):
    from avatar.audio.types import Audio
    from avatar.video.writer import VideoWriter

    path = folder / "clip.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(path, 48, 48, fps=FPS, audio=Audio(np.zeros(3840, np.float32), 16000)) as writer:
        for _ in range(6):
            writer.write(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    return path


def tiny_motion():
    from avatar.motion.types import BODY_JOINTS, MotionSeq

    seq = MotionSeq.neutral(T, FPS)
    seq.set_action("jawOpen", np.linspace(0, 1, T))
    seq.upper_body = np.zeros((T, len(BODY_JOINTS), 2), np.float32)
    return seq


def write_motion(folder):
    from avatar.motion.io import save_motion

    path = folder / "motion.npz"
    save_motion(tiny_motion(), path)
    return path


def write_clip(folder):
    from avatar.audio.types import AudioFeatures, Phone
    from avatar.data.body import NUM_JOINTS
    from avatar.data.clip import Clip, ReferenceFace, save_clip
    from avatar.face.model import face_template

    rng = np.random.default_rng(0)
    neutral = face_template()[0] * 100
    features = AudioFeatures(FPS, *(rng.random(T) for _ in range(4)), rng.random((T, 4)))
    clip = Clip("tiny", FPS, tiny_motion(), np.repeat(neutral[None], T, 0).astype(np.float32), np.ones(T, bool),
                np.zeros(T, np.float32), features, [Phone("SIL", 0.0, T / FPS)], [(T - 2, T)],
                ReferenceFace(0, neutral, np.eye(3), 100.0, np.zeros(3), neutral[:, :2]), "tiny.mp4", (48, 48),
                body_points=rng.random((T, NUM_JOINTS, 3)).astype(np.float32))
    (folder / "dataset").mkdir()
    path = folder / "dataset" / "tiny.npz"
    save_clip(clip, path)
    return path


def tiny_model():
    import torch

    from avatar.diffusion import EDMPrecond, MotionTransformer, MotionTransformerConfig

    torch.manual_seed(0)
    return EDMPrecond(MotionTransformer(MotionTransformerConfig(motion_dim=3, frame_conds={"audio": 2},
                                                                width=8, depth=1, heads=1)))


def write_checkpoint(folder):
    from avatar.diffusion.checkpoint import save_model

    return save_model(folder / "model.safetensors", tiny_model(), extra={"step": 1})


def write_bundle(folder):
    """A bundle of T synthetic frames: every file load_bundle and mouth_bank read."""
    from avatar.audio.types import AudioFeatures, Phone
    from avatar.body.types import BodyTrack
    from avatar.gesture.bundle import MOUTH, Bundle, BundleWriter, EnrollReport, save_bundle_arrays
    from avatar.gesture.graph import MotionGraph
    from avatar.render.mouth_bank import KEY_SIZE, PATCH_SIZE

    rng = np.random.default_rng(0)

    def f32(*shape):
        return rng.normal(size=shape).astype(np.float32)

    body = BodyTrack(FPS, (48, 48), f32(T, 33, 3), f32(T, 33, 3), f32(T, 2, 21, 3), f32(T, 2, 21, 3),
                     np.zeros((T, 4, 4), np.uint8), f32(T, 478, 3))
    features = AudioFeatures(FPS, *(rng.random(T) for _ in range(4)), f32(T, 4))
    graph = MotionGraph(np.array([0, 4]), np.array([0, 0]), np.array([[0, 1], [1, 0]], bool))
    bundle = Bundle(folder / "tiny", "tiny", "tiny.mp4", FPS, (48, 48), body, features,
                    [Phone("SIL", 0.0, T / FPS)], graph, f32(T, 4), f32(T, 4), EnrollReport(frames=T))
    with BundleWriter(folder / "tiny") as writer:
        save_bundle_arrays(writer, bundle)
        w, h = PATCH_SIZE
        writer.save_npz(MOUTH, {"patches": np.zeros((2, h, w, 3), np.uint8), "keys": f32(2, KEY_SIZE)})
        return writer.commit()


# -- the loaders, called as the CLI calls them -----------------------------------------------
def load_image(path):
    from avatar.image import load_image

    return load_image(path)


def load_audio(path):
    from avatar.audio.io import load_audio

    return load_audio(path)


def load_video(path):
    from avatar.video.reader import iter_frames, probe, read_audio_track

    info = probe(path)
    frames = list(iter_frames(path))
    if info.has_audio:
        read_audio_track(path, 16000)
    return frames


def load_motion(path):
    from avatar.motion.io import load_motion

    return load_motion(path)


def load_clip(path):
    from avatar.training.dataset import load_dataset

    clips = load_dataset(path.parent)
    for clip in clips:
        clip.split("train")
    return clips


def load_checkpoint(path):
    from avatar.diffusion.checkpoint import load_model, read_spec

    read_spec(path)
    return load_model(path)


def load_bundle(folder):
    from avatar.gesture.bundle import load_bundle

    bundle = load_bundle(folder)
    bundle.mouth_bank()
    return bundle


def loads_or_refuses(load, path) -> bool:
    """True if ``path`` loads, False if it is refused with AvatarError; any other exception
    fails the test (the rule the fuzzer checks)."""
    try:
        load(path)
    except AvatarError as error:
        assert "\n" not in str(error)
        return False
    return True


FILES = {"image": (write_image, load_image), "audio": (write_audio, load_audio),
         "video": (write_video, load_video), "motion": (write_motion, load_motion),
         "clip": (write_clip, load_clip), "checkpoint": (write_checkpoint, load_checkpoint)}
BUNDLE_MEMBERS = ("bundle.json", "track.npz", "graph.npz", "embeddings.npz", "mouth.npz")
EIGHTHS = range(1, 8)


# -- sanity: truncated and flipped valid files ----------------------------------------------
@pytest.mark.parametrize("kind", sorted(FILES))
def test_truncated_and_flipped_files_load_or_are_refused(kind, tmp_path):
    write, load = FILES[kind]
    path = write(tmp_path)
    assert loads_or_refuses(load, path)  # the valid file loads
    data = path.read_bytes()
    for k in EIGHTHS:
        cut = len(data) * k // 8
        path.write_bytes(data[:cut])
        loads_or_refuses(load, path)
        flipped = bytearray(data)
        flipped[cut] ^= 0xFF
        path.write_bytes(bytes(flipped))
        loads_or_refuses(load, path)
    path.write_bytes(b"")
    assert not loads_or_refuses(load, path)


@pytest.mark.parametrize("member", BUNDLE_MEMBERS)
def test_truncated_and_flipped_bundle_files_load_or_are_refused(member, tmp_path):
    folder = write_bundle(tmp_path)
    assert loads_or_refuses(load_bundle, folder)
    data = (folder / member).read_bytes()
    for k in EIGHTHS:
        cut = len(data) * k // 8
        (folder / member).write_bytes(data[:cut])
        assert not loads_or_refuses(load_bundle, folder)
        flipped = bytearray(data)
        flipped[cut] ^= 0xFF
        (folder / member).write_bytes(bytes(flipped))
        loads_or_refuses(load_bundle, folder)


# -- helpers to rewrite one array (or the JSON meta) of a valid archive ------------------------
def rewrite(path, **changes):
    """Rewrite the npz at ``path`` with arrays replaced (a value of None deletes it)."""
    with np.load(path) as archive:
        arrays = dict(archive)
    for key, value in changes.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = value
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def rewrite_meta(path, **changes):
    with np.load(path) as archive:
        meta = json.loads(str(archive["meta"]))
    meta.update(changes)
    rewrite(path, meta=np.array(json.dumps(meta)))


def invalid_text(shape=(2,)):
    """A unicode array holding code points above U+10FFFF (numpy fails converting it)."""
    return np.full(shape, 0x7FFFFFFF, np.uint32).view("<U1")


def refused(load, path, match: str):
    with pytest.raises(AvatarError, match=match) as error:
        load(path)
    assert "\n" not in str(error.value)  # the CLI prints one line


# -- motion (.npz of --export-motion) ---------------------------------------------------------
@pytest.mark.parametrize("changes, match", [
    ({"meta": np.array("null")}, "not an avatar motion file"),  # was AttributeError
    ({"meta": np.array('{"format": "avatar-motion", "version": [1]}')}, "version"),  # was TypeError
    ({"rotation": np.float32(0)}, "damaged avatar motion file"),  # 0-d: was TypeError (len)
    ({"actions": np.float32(0)}, "damaged avatar motion file"),  # was IndexError
    ({"gaze": np.zeros((3, 2), np.float32)}, "damaged avatar motion file"),  # wrong T: ValueError
    ({"body": np.float32(0)}, "damaged avatar motion file"),  # 0-d: was IndexError in MotionSeq.slice
    ({"hands": np.zeros((T, 2, 3), np.float32)}, "damaged avatar motion file"),
    ({"rotation": invalid_text((T, 3))}, "not an avatar motion file"),  # was SystemError in numpy
    ({"rotation": np.asfortranarray(np.full((T, 3), "a"))}, "damaged avatar motion file"),  # text, not numbers
])
def test_motion_file_with_odd_arrays_is_refused(tmp_path, changes, match):
    path = write_motion(tmp_path)
    rewrite(path, **changes)
    refused(load_motion, path, match)


@pytest.mark.parametrize("changes", [{"action_names": 3}, {"fps": {}}, {"fps": 0}, {"fps": float("nan")},
                                     {"action_names": None}])
def test_motion_file_with_odd_json_is_refused(tmp_path, changes):
    path = write_motion(tmp_path)
    rewrite_meta(path, **changes)  # were TypeError (int / None not iterable, float(dict)) or a 0 fps
    refused(load_motion, path, "damaged avatar motion file")


def test_damaged_compressed_motion_member_is_refused(tmp_path):
    """A flipped byte inside a compressed array: zipfile's BadZipFile (bad CRC) or zlib.error
    on the first read of that array, which np.load defers (leaked from load_motion)."""
    path = write_motion(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("gaze.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # the compressed data
    data[start + info.compress_size // 2] ^= 0x55
    path.write_bytes(bytes(data))
    refused(load_motion, path, "motion")


def test_zip_entry_that_is_not_an_array_is_refused(tmp_path):
    path = write_motion(tmp_path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("notes", b"raw bytes, not .npy")  # np.load hands back bytes for it
    refused(load_motion, path, "not an avatar motion file")


def test_array_header_announcing_gigabytes_is_refused_before_allocating(tmp_path):
    """A few bytes of npy header may declare any shape; numpy allocates it before reading."""
    path = write_motion(tmp_path)
    rewrite(path, rotation=None)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10 ** 12,)})
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("rotation.npy", np.lib.format.magic(1, 0) + buf.getvalue()[8:] + b"\0" * 64)
    refused(load_motion, path, "not an avatar motion file")


def test_encrypted_zip_member_is_refused(tmp_path):
    """The encryption flag set on one member: zipfile raised RuntimeError (password required)."""
    path = write_motion(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("gaze.npy")
    data[info.header_offset + 6] |= 0x1  # local header flags
    offset = 0
    while (offset := data.find(b"PK\x01\x02", offset)) >= 0:
        name_length = int.from_bytes(data[offset + 28:offset + 30], "little")
        if data[offset + 46:offset + 46 + name_length] == b"gaze.npy":
            data[offset + 8] |= 0x1  # central directory flags
        offset += 4
    path.write_bytes(bytes(data))
    refused(load_motion, path, "not an avatar motion file")


def test_a_single_npy_array_is_not_a_motion_file(tmp_path):
    path = tmp_path / "m.npz"
    np.save(path.open("wb"), np.zeros(3))
    refused(load_motion, path, "not an avatar motion file")


# -- dataset clips -----------------------------------------------------------------------------
@pytest.mark.parametrize("changes", [
    {"landmarks": np.float32(0)},  # 0-d: was IndexError in Clip.slice (training)
    {"tracked": np.ones(T + 1, bool)},
    {"energy": np.float32(0)},  # was IndexError slicing the features
    {"phone_times": np.float64(0)},  # was TypeError: iteration over a 0-d array
    {"body": np.float32(0)},  # optional motion array, 0-d: was IndexError in Clip.split
    {"body_points": invalid_text((T, 8, 3))},  # was SystemError in numpy
])
def test_clip_with_odd_arrays_is_refused(tmp_path, changes):
    path = write_clip(tmp_path)
    rewrite(path, **changes)
    refused(load_clip, path, "avatar clip file")


@pytest.mark.parametrize("changes", [{"fps": {}}, {"video_size": [None, 48]}, {"video_size": 7},
                                     {"reference_frame": {}}, {"face_scale": {}}, {"start_frame": {}},
                                     {"validation": [[None, 1]]}, {"video_size": [float("inf"), 48]},
                                     {"start_frame": float("-inf")}])
def test_clip_with_odd_json_is_refused(tmp_path, changes):
    path = write_clip(tmp_path)
    rewrite_meta(path, **changes)  # each was a TypeError out of load_clip or Clip.slice
    refused(load_clip, path, "damaged avatar clip file")


# -- avatar bundles ----------------------------------------------------------------------------
def test_damaged_mouth_bank_is_refused(tmp_path):
    folder = write_bundle(tmp_path)
    rewrite(folder / "mouth.npz", patches=np.zeros(1), keys=np.array(["x"]))  # was ValueError (text)
    refused(load_bundle, folder, "mouth bank is damaged")
    (folder / "mouth.npz").write_bytes(b"PK\x03\x04" + bytes(40))  # was EOFError from mouth_bank()
    refused(load_bundle, folder, "mouth bank is damaged")


@pytest.mark.parametrize("member, changes", [
    ("track.npz", {"body_masks": invalid_text((T, 4, 4))}),  # was SystemError in numpy
    ("track.npz", {"body_size": np.zeros(0)}),  # unpacking: ValueError
    ("embeddings.npz", {"low": np.zeros((T - 1, 4), np.float32)}),  # speaking indexes frames by them
    ("graph.npz", {"graph_starts": np.array([0, T])}),  # a node past the last frame
    ("graph.npz", {"graph_src": np.float32(0)}),  # 0-d: was TypeError in scipy
])
def test_bundle_with_odd_arrays_is_refused(tmp_path, member, changes):
    folder = write_bundle(tmp_path)
    rewrite(folder / member, **changes)
    refused(load_bundle, folder, "the avatar bundle is damaged")


@pytest.mark.parametrize("changes", [{"size": [None]}, {"size": 3}, {"fps": 0}, {"report": []},
                                     {"size": [float("inf"), 48]}])  # int(inf) was an OverflowError
def test_bundle_with_odd_json_is_refused(tmp_path, changes):
    folder = write_bundle(tmp_path)
    meta = json.loads((folder / "bundle.json").read_text())
    (folder / "bundle.json").write_text(json.dumps({**meta, **changes}))
    refused(load_bundle, folder, "the avatar bundle is damaged")


# -- checkpoints -------------------------------------------------------------------------------
def rewrite_spec(path, spec):
    """The checkpoint at ``path`` with its metadata's spec replaced by ``spec`` (JSON)."""
    import safetensors
    import safetensors.torch

    with safetensors.safe_open(str(path), framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
        metadata = f.metadata()
    safetensors.torch.save_file(tensors, str(path), metadata={**metadata, "spec": json.dumps(spec)})


def model_spec_of(path):
    from avatar.diffusion.checkpoint import read_spec

    spec = read_spec(path)
    spec.pop("extra")
    return spec


def test_checkpoint_naming_a_module_that_defines_no_model_imports_nothing(tmp_path):
    """The spec's ``module`` was imported if it started with "avatar." (ModuleNotFoundError
    for a missing one; any avatar module, e.g. the CLI, for another)."""
    path = write_checkpoint(tmp_path)
    spec = model_spec_of(path)
    for module in ("avatar.no_such_module", "avatar.cli", "os"):
        sys.modules.pop("avatar.cli", None) if module == "avatar.cli" else None
        rewrite_spec(path, {**spec, "kind": "not_a_kind", "module": module})
        refused(load_checkpoint, path, "unknown model kind")
        assert module == "os" or module not in sys.modules


@pytest.mark.parametrize("spec", [[1, 2], {"kind": "edm"}, {"kind": "edm", "config": []}, "x"])
def test_checkpoint_spec_that_is_not_an_object_is_refused(tmp_path, spec):
    path = write_checkpoint(tmp_path)
    rewrite_spec(path, spec)  # a list was a TypeError out of read_spec
    refused(load_checkpoint, path, "checkpoint")


def test_checkpoint_config_asking_for_more_weights_than_the_file_holds_is_refused(tmp_path):
    """width 10^5 would build a 10^10-weight model (40 GB) before loading the file's few KB."""
    path = write_checkpoint(tmp_path)
    spec = model_spec_of(path)
    spec["config"]["net"]["config"]["width"] = 100_000
    rewrite_spec(path, spec)
    refused(load_checkpoint, path, "describes .* weights but the file holds")


@pytest.mark.parametrize("key, value", [("depth", -4), ("depth", "8"), ("depth", None), ("depth", 1e9),
                                        ("heads", 0)])  # heads 0 was a ZeroDivisionError
def test_checkpoint_config_with_odd_values_is_refused(tmp_path, key, value):
    path = write_checkpoint(tmp_path)
    spec = model_spec_of(path)
    spec["config"]["net"]["config"][key] = value
    rewrite_spec(path, spec)
    refused(load_checkpoint, path, "checkpoint (config|weights) do")  # -4: no blocks, so weights are left over


# -- videos ------------------------------------------------------------------------------------
def test_video_in_a_codec_without_a_decoder_is_refused(tmp_path):
    """An unknown sample-entry tag leaves the stream without a codec context (was
    AttributeError in probe)."""
    path = write_video(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"avc1", b"zzz1"))
    refused(load_video, path, "codec this program cannot decode")


def test_audio_in_a_codec_without_a_decoder_is_refused(tmp_path):
    """Was AttributeError in probe (``codec_context.name`` of None)."""
    path = write_video(tmp_path)
    # the sample-entry tag and the esds object type (0x40: AAC) both unknown
    data = path.read_bytes().replace(b"mp4a", b"zzz4")
    path.write_bytes(data.replace(b"\x04\x80\x80\x80\x17\x40", b"\x04\x80\x80\x80\x17\xff"))
    from avatar.video.reader import probe, read_audio_track

    assert not probe(path).has_audio  # the video is still usable for dubbing
    refused(lambda p: read_audio_track(p, 16000), path, "codec this program cannot decode")
    refused(load_audio, path, "codec this program cannot decode")


# -- audio -------------------------------------------------------------------------------------
def test_wav_claiming_a_sample_rate_of_1_hz_is_refused(tmp_path):
    """2400 samples "at 1 Hz" are 40 minutes: resampled to 44.1 kHz they took over 3 GB
    (libFuzzer out-of-memory)."""
    path = write_audio(tmp_path)
    data = bytearray(path.read_bytes())
    data[24:32] = (1).to_bytes(4, "little") + (2).to_bytes(4, "little")  # sample rate, byte rate
    path.write_bytes(bytes(data))
    refused(load_audio, path, "impossible sample rate")
    refused(lambda p: load_video_audio(p), path, "impossible sample rate")


def load_video_audio(path):
    from avatar.video.reader import read_audio_track

    return read_audio_track(path, 16000)


def test_video_with_a_tag_that_is_not_utf8_loads(tmp_path):
    """PyAV decodes tags strictly as UTF-8: av.open raised UnicodeDecodeError (out of probe
    and load_audio) for an otherwise sound file."""
    path = write_video(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"Lavf", b"\xff\xfe\xfdf"))  # the encoder tag
    assert len(load_video(path)) == 6
    assert load_audio(path).duration > 0
