"""Failures a user on a shared cluster meets, each a clear error naming the file (or a loud
recovery), never a traceback: unusable checkpoints, corrupt Parquet outputs, missing extras,
selections that leave too few events, unsafe names, and the command line's messages. Real
files and real processes throughout (the SSWW samples, `vbsad` in a subprocess)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import SSWW_DIR, real_example_text, run_vbsad

from vbsad_batch.runtime.atomic_write import TEMP_PREFIX

pytestmark = pytest.mark.slow

CHECKPOINT = Path("models") / "vae_latent3" / "checkpoint.npz"


def _analysis(directory: Path, training: str = "", extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = real_example_text(without=("training",))
    text = f'output_dir = "{directory / "out"}"\n' + text + extra
    text += "\n[training]\nseeds = [0]\n" + training
    path = directory / "ana.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _killed_mid_training(config: Path) -> Path:
    """Start `vbsad train` and SIGKILL it once it wrote a checkpoint; the checkpoint."""
    checkpoint = config.parent / "out" / CHECKPOINT
    proc = subprocess.Popen(
        [sys.executable, "-m", "vbsad_batch", "train", str(config), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while not checkpoint.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # a few epochs in
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert checkpoint.exists()
    return checkpoint


def _weights(model_dir: Path) -> list[np.ndarray]:
    from vbsad_batch.models.networks import load_model  # noqa: PLC0415 - TensorFlow

    return [np.asarray(w) for w in load_model(model_dir).get_weights()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """Datasets of the real samples and the weights of an uninterrupted training."""
    config = _analysis(tmp_path_factory.mktemp("reference"), "epochs = 300\npatience = 300\n")
    assert run_vbsad("datasets", config, "-q").returncode == 0
    proc = run_vbsad("train", config, "-q")
    assert proc.returncode == 0, proc.stderr
    return config, _weights(config.parent / "out" / "models" / "vae_latent3")


def _corrupt_by_cutting(checkpoint: Path) -> None:
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])  # a write killed on a full disk


def _corrupt_a_field(checkpoint: Path) -> None:
    with np.load(checkpoint, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["meta"]))
    meta["state"]["wait"] = "three"  # hand-edited
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    checkpoint.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("corrupt", [_corrupt_by_cutting, _corrupt_a_field])
def test_an_unusable_checkpoint_is_set_aside_and_training_starts_afresh(
    reference: tuple[Path, list[np.ndarray]], tmp_path: Path, corrupt: object
) -> None:
    source, weights = reference
    config = _analysis(tmp_path, "epochs = 300\npatience = 300\n")
    assert run_vbsad("datasets", config, "-q").returncode == 0
    checkpoint = _killed_mid_training(config)
    assert callable(corrupt)
    corrupt(checkpoint)
    if corrupt is _corrupt_by_cutting:
        with pytest.raises(zipfile.BadZipFile):
            zipfile.ZipFile(checkpoint)  # what used to reach the user as a traceback
    proc = run_vbsad("train", config, "--resume")  # failed on every retry before
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"{checkpoint}: unreadable checkpoint: " in proc.stderr
    assert "training starts afresh" in proc.stderr
    aside = sorted(checkpoint.parent.glob("checkpoint.npz.unreadable-*"))
    assert len(aside) == 1  # kept for inspection
    # Afresh means: the weights of the uninterrupted training of the reference.
    assert source != config
    for ours, theirs in zip(_weights(checkpoint.parent), weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_the_status_of_a_checkpoint_that_cannot_be_read_is_none(tmp_path: Path) -> None:
    from vbsad_batch.models.checkpoints import (  # noqa: PLC0415
        CheckpointCorruptError,
        checkpoint_state,
        read_checkpoint,
    )

    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert checkpoint_state(directory) is None
    with pytest.raises(CheckpointCorruptError, match=r"checkpoint\.npz: unreadable checkpoint"):
        read_checkpoint(directory / "checkpoint.npz")
    assert os.path.exists(directory / "checkpoint.npz")  # reading moves nothing


# --- damaged Parquet files, a full disk ---------------------------------------------------------


def _shard_without_manifest(directory: Path) -> Path:
    """A real shard of the SSWW SM sample, its manifest removed (the footer stands in)."""
    shard_dir = directory / "shards"
    proc = run_vbsad("preprocess", SSWW_DIR / "ssww_SM.lhe.gz", "--output", shard_dir, "-q")
    assert proc.returncode == 0, proc.stderr
    shard = shard_dir / "ssww_SM.parquet"
    (shard_dir / "ssww_SM.manifest.json").unlink()
    return shard


def _panicking_copy(shard: Path) -> bytes:
    """The shard with one byte of its footer changed so that polars panics in Rust when it
    reads the rows (the first such byte, searched; the footer itself still parses)."""
    import polars as pl  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    good = shard.read_bytes()
    footer = int.from_bytes(good[-8:-4], "little")
    probe = shard.with_name("probe.parquet")
    try:
        for position in range(len(good) - 8 - footer, len(good) - 8):
            for value in (0xFF, 0x7F):
                data = bytearray(good)
                data[position] = value
                probe.write_bytes(bytes(data))
                try:
                    pq.read_metadata(probe)
                    pl.read_parquet(probe)
                except pl.exceptions.PanicException:
                    return bytes(data)
                except Exception:  # another failure: keep searching
                    continue
    finally:
        probe.unlink(missing_ok=True)
    pytest.fail(f"no single-byte change of {shard}'s footer makes polars panic")


def _sample_config(directory: Path, shard: Path) -> Path:
    path = directory / "ana.toml"
    path.write_text(
        f'output_dir = "{directory / "out"}"\n[[samples]]\ncomponent = "sm"\nfiles = "{shard}"\n',
        encoding="utf-8",
    )
    return path


def test_a_shard_that_makes_polars_panic_is_an_error_naming_it(tmp_path: Path) -> None:
    shard = _shard_without_manifest(tmp_path)
    shard.write_bytes(_panicking_copy(shard))
    config = _sample_config(tmp_path, shard)
    for args in (("datasets", config), ("yields", config), ("export-root", shard, "-o", tmp_path)):
        proc = run_vbsad(*args)
        assert proc.returncode == 1, (args, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, args
        assert "panicked" not in proc.stderr, args
        (line,) = proc.stderr.strip().splitlines()[-1:]
        assert line.startswith(f"vbsad: error: {shard}: cannot read this Parquet shard ("), line
        assert "vbsad preprocess" in line, line


def test_a_shard_with_a_cut_footer_names_the_file(tmp_path: Path) -> None:
    shard = _shard_without_manifest(tmp_path)
    shard.write_bytes(shard.read_bytes()[:-100])
    proc = run_vbsad("yields", _sample_config(tmp_path, shard))
    assert proc.returncode == 1
    assert f"{shard}: cannot read this Parquet shard (" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 600 kB tmpfs (root mounts it, as on this machine and in CI)."""
    if os.geteuid() != 0:
        pytest.fail("mounting a small tmpfs to fill needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_names_the_file_being_written_and_leaves_no_part(small_disk: Path) -> None:
    config = small_disk / "ana.toml"
    text = real_example_text(without=("training",))
    config.write_text(f'output_dir = "{small_disk / "out"}"\n' + text, encoding="utf-8")
    proc = run_vbsad("datasets", config)
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"vbsad: error: {small_disk / 'out'}/"), line
    assert "no space left on the device while writing it" in line, line
    assert "Traceback" not in proc.stderr
    leftovers = [p for p in small_disk.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == []


# --- what a command needs, and its messages -----------------------------------------------------

_BLOCK_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "


def _in_python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        check=False,
    )


@pytest.mark.parametrize("command", ["train", "run"])
def test_a_missing_extra_is_named_before_any_work(tmp_path: Path, command: str) -> None:
    """Without TensorFlow (imports of it blocked: as if the 'train' extra were not
    installed), the commands that need it say so and which extra to install, at once (`run`:
    before its first stage, not after two). `score` and `report` need no TensorFlow (see
    `test_score_and_report_need_no_tensorflow`)."""
    config = _analysis(tmp_path)
    code = (
        _BLOCK_TENSORFLOW + "from vbsad_batch.cli import main; "
        f"raise SystemExit(main([{command!r}, {str(config)!r}]))"
    )
    proc = _in_python(code)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "needs tensorflow (the 'train' extra), which is not installed" in proc.stderr
    assert "pip install 'vbsad_batch[train]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing was done


def _tensorflow_scores(model_dir: Path, dataset: Path) -> dict[str, np.ndarray]:
    """The scores of the Keras model of `model_dir` on `dataset`, computed by TensorFlow."""
    import polars as pl  # noqa: PLC0415

    from vbsad_batch.models.networks import load_model, scores  # noqa: PLC0415 - TensorFlow
    from vbsad_batch.models.preprocessing import Preprocessing  # noqa: PLC0415

    prep = Preprocessing.from_json((model_dir / "preprocessing.json").read_text("utf-8"))
    return scores(load_model(model_dir), prep.transform(pl.read_parquet(dataset)))


def test_score_and_report_need_no_tensorflow(tmp_path: Path) -> None:
    """`vbsad score` and `vbsad report` with every import of TensorFlow and Keras blocked (as
    without the 'train' extra) score the models that `vbsad train` made, with TensorFlow's own
    scores to float32 rounding, and draw every figure, the reconstructions included."""
    import polars as pl  # noqa: PLC0415

    config = _analysis(tmp_path, "epochs = 3\n")
    assert run_vbsad("datasets", config, "-q").returncode == 0
    for kind in ("vae", "vae_nn"):
        proc = run_vbsad("train", config, "-q", "--model", kind)
        assert proc.returncode == 0, proc.stderr[-2000:]
        code = (
            _BLOCK_TENSORFLOW + "from vbsad_batch.cli import main; "
            f"code = main(['score', {str(config)!r}, '--model', {kind!r}, '-q']); "
            "assert 'tensorflow' not in sys.modules or sys.modules['tensorflow'] is None; "
            "raise SystemExit(code)"
        )
        proc = _in_python(code)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = config.parent / "out"
        (model_dir,) = (out / "models").glob(f"{kind}_latent3*")
        score_dir = out / "scores" / model_dir.name
        names = sorted(p.stem for p in score_dir.glob("*.parquet"))
        assert "sm_test" in names
        assert any(n.startswith("quad_test_") for n in names)
        for name in names:
            ours = pl.read_parquet(score_dir / f"{name}.parquet")
            theirs = _tensorflow_scores(model_dir, out / "datasets" / f"{name}.parquet")
            assert set(ours.columns) - {"event", "input_sha256", "yield"} == set(theirs)
            for column, values in theirs.items():
                np.testing.assert_allclose(
                    ours[column].to_numpy(), values, rtol=1e-5, err_msg=f"{name} {column}"
                )
    code = (
        _BLOCK_TENSORFLOW + "from vbsad_batch.cli import main; "
        f"code = main(['report', {str(config)!r}, '-q']); "
        "assert 'tensorflow' not in sys.modules or sys.modules['tensorflow'] is None; "
        "raise SystemExit(code)"
    )
    proc = _in_python(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = {p.name for p in (config.parent / "out" / "report" / "figures").glob("*.png")}
    models = [p.name for p in (config.parent / "out" / "models").iterdir() if p.is_dir()]
    assert len(models) == 2
    for name in models:
        for figure in ("reconstruction", "scores", "training"):
            assert f"{figure}_{name}.png" in figures, sorted(figures)


def test_train_checks_the_config_before_tensorflow_and_hides_its_start_up(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(real_example_text(without=("training",)) + "[training]\nepoch = 3\n")
    code = (
        "import sys; from vbsad_batch.cli import main; "
        f"code = main(['train', {str(bad)!r}]); "
        "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow'); "
        "raise SystemExit(code)"
    )
    proc = _in_python(code)
    assert proc.returncode == 1
    assert "training.epoch: unknown key (did you mean 'epochs'" in proc.stderr
    assert proc.stdout.strip() == "no tensorflow"
    good = _analysis(tmp_path / "good", "epochs = 2\n")
    assert run_vbsad("datasets", good, "-q").returncode == 0
    proc = run_vbsad("train", good, "-q")
    assert proc.returncode == 0, proc.stderr
    for startup in ("absl::InitializeLog", "oneDNN custom operations", "cuda", "I0000"):
        assert startup not in proc.stderr, proc.stderr[-2000:]


def test_quiet_does_not_hide_the_yields_table(tmp_path: Path) -> None:
    config = _analysis(tmp_path)
    proc = run_vbsad("yields", config, "-q")
    assert proc.returncode == 0
    assert "expected yields in events at 350 fb^-1" in proc.stdout
    json_file = tmp_path / "y.json"
    proc = run_vbsad("yields", config, "-q", "--json", json_file)
    assert proc.stdout == ""  # written to the file: -q keeps the terminal quiet
    assert json_file.is_file()


def test_a_directory_where_a_file_belongs_and_a_file_where_a_directory_belongs(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "somewhere"
    directory.mkdir()
    for args, expected in (
        (("inspect", directory), f"{directory} is a directory, not an LHE file"),
        (("yields", directory), f"{directory} is a directory, not a config file (TOML)"),
        (("train", directory), f"{directory} is a directory, not a config file (TOML)"),
    ):
        proc = run_vbsad(*args)
        assert proc.returncode == 2, args
        assert expected in proc.stderr, (args, proc.stderr)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a directory\n")
    lhe = SSWW_DIR / "ssww_SM.lhe.gz"
    for args in (
        ("preprocess", lhe, "--output", a_file),
        ("demo-data", "--output", a_file),
        ("export-root", lhe, "--output", a_file),
    ):
        proc = run_vbsad(*args)
        assert proc.returncode == 2, args
        assert f"{a_file} is a file, not a directory" in proc.stderr, (args, proc.stderr)
        assert "File exists" not in proc.stderr


def test_the_skip_hint_only_where_skipping_helps(tmp_path: Path) -> None:
    text = gzip_text(SSWW_DIR / "ssww_SM.lhe.gz")
    bad_event = tmp_path / "bad_event.lhe"
    first = text.index("<event>")
    line_end = text.index("\n", text.index("\n", first) + 1)
    bad_event.write_text(text[:line_end] + " not-a-number" + text[line_end:])
    proc = run_vbsad("inspect", bad_event)
    assert proc.returncode == 1
    assert "event 0" in proc.stderr
    assert "rerun with --on-error skip" in proc.stderr
    bad_header = tmp_path / "bad_header.lhe"
    init = text.index("<init>")
    bad_header.write_text(text[: init + len("<init>\n")] + "garbage\n" + text[init + 7 :])
    proc = run_vbsad("inspect", bad_header)
    assert proc.returncode == 1, proc.stderr
    assert "--on-error skip" not in proc.stderr, proc.stderr


def gzip_text(path: Path) -> str:
    import gzip  # noqa: PLC0415

    return gzip.decompress(path.read_bytes()).decode()


# --- selections that leave too little, unsafe names ---------------------------------------------


def test_a_selection_that_leaves_no_event_is_an_error_naming_it(tmp_path: Path) -> None:
    text = real_example_text(without=("training",)).replace(
        'selection = "ptj1 > 30 and ptj2 > 30 and deltaetajj > 2 and mjj > 200"',
        'selection = "mjj > 1e7"',
    )
    config = tmp_path / "ana.toml"
    config.write_text(f'output_dir = "{tmp_path / "out"}"\n' + text, encoding="utf-8")
    proc = run_vbsad("datasets", config)
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert "the selection 'mjj > 1e7' leaves no event of 'ssww_SM' (sm : 0 of 2000 events)" in line
    assert "'ssww_cW_QUAD' (quad cW: 0 of 2000 events)" in line
    assert not (tmp_path / "out" / "datasets" / "manifest.json").exists()


def test_fewer_sm_events_than_one_batch_is_an_error_before_training(tmp_path: Path) -> None:
    config = _analysis(tmp_path, "batch_size = 5000\nepochs = 2\n")
    assert run_vbsad("datasets", config, "-q").returncode == 0
    proc = run_vbsad("train", config)
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    import pyarrow.parquet as pq  # noqa: PLC0415

    datasets = tmp_path / "out" / "datasets"
    n_train, n_val = (
        pq.read_metadata(datasets / f"sm_{s}.parquet").num_rows for s in ("train", "validation")
    )
    assert f"leaves {n_train} SM training and {n_val} SM validation events, fewer than" in line
    assert "([training] batch_size = 5000)" in line
    assert "ptj1 > 30 and ptj2 > 30" in line  # the selection named
    assert not (tmp_path / "out" / "models" / "vae_latent3" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("where", "name"),
    [
        ("operator", "c/W"),
        ("operator", "cW\n"),
        ("operator", "c\x07W"),
        ("sample", "../escape"),
        ("sample", "ssww\tSM"),
        ("sample", "a b"),
    ],
)
def test_names_with_separators_or_control_characters_are_rejected(
    tmp_path: Path, where: str, name: str
) -> None:
    from vbsad_batch.config import load_config  # noqa: PLC0415
    from vbsad_batch.config.schema import ConfigError  # noqa: PLC0415

    sm = SSWW_DIR / "ssww_SM.lhe.gz"
    if where == "operator":
        text = f"operators = [{json.dumps(name)}]\n"
        text += f'[[samples]]\ncomponent = "sm"\nfiles = "{sm}"\n'
        text += f'[[samples]]\ncomponent = "lin"\noperator = {json.dumps(name)}\nfiles = "{sm}"\n'
        pattern = "invalid operator name"
    else:
        text = f'[[samples]]\nname = {json.dumps(name)}\ncomponent = "sm"\nfiles = "{sm}"\n'
        pattern = "invalid sample name"
    path = tmp_path / "ana.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=pattern):
        load_config(path)
