"""The shared stages of the Bible examples (examples/common.sh): where distilled targets go, and that targets
distilled with one beam are never reused as another beam's (the demo distils with beam 4, table33.sh and
compare-fairseq-nat.sh also with beam 1, into the same OUT)."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_stage(out: Path, script: str, beam=None):
    env = {"PATH": "/usr/bin:/bin", "OUT": str(out), "DATA": str(out / "bible"), "PYTHON": sys.executable}
    if beam is not None:
        env["DISTILL_BEAM"] = str(beam)
    cmd = f'log() {{ echo "LOG $*" >&2; }}; source examples/common.sh; {script}'
    return subprocess.run(["bash", "-c", cmd], cwd=REPO, env=env, capture_output=True, text=True)


def test_distill_dir_depends_on_the_beam(tmp_path):
    assert run_stage(tmp_path, "distill_dir").stdout.strip() == f"{tmp_path}/distill"
    assert run_stage(tmp_path, "distill_dir", beam=1).stdout.strip() == f"{tmp_path}/distill"
    assert run_stage(tmp_path, "distill_dir", beam=4).stdout.strip() == f"{tmp_path}/distill-beam4"


def made_with(folder: Path, beam: int) -> None:
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "dict.en.txt").write_text("the 1\n")
    (folder / "distill.json").write_text(json.dumps({"beam": beam}))


def test_distill_stage_reuses_targets_of_the_same_beam(tmp_path):
    made_with(tmp_path / "distill-beam4", 4)
    r = run_stage(tmp_path, 'distill_stage "distilling"; echo rc=$?', beam=4)
    assert r.stdout.strip() == "rc=0", r.stderr
    assert "LOG distilling" not in r.stderr  # skipped: nothing was distilled again


def test_distill_stage_refuses_targets_of_another_beam(tmp_path):
    made_with(tmp_path / "shared", 1)
    r = run_stage(tmp_path, f'distill_stage "distilling" {tmp_path}/shared; echo rc=$?', beam=4)
    assert r.stdout.strip() == "rc=1"
    assert f"{tmp_path}/shared holds targets distilled with beam 1, not DISTILL_BEAM=4" in r.stderr
    assert "set DISTILL_BEAM=1 or remove" in r.stderr
    assert "LOG distilling" not in r.stderr
