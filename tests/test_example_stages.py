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


def fake_compare_out(tmp_path: Path) -> dict:
    """An OUT with what compare-fairseq-nat.sh checks for, and a fake fairseq-train on PATH that records its argv
    (one argument per line) in <save dir>/argv instead of training."""
    out = tmp_path / "out"
    (out / "ar").mkdir(parents=True)
    (out / "ar" / "checkpoint_last.pt").write_bytes(b"")
    (out / "bible" / "bin").mkdir(parents=True)
    (out / "bible" / "bin" / "dict.en.txt").write_text("the 1\n")
    made_with(out / "distill-beam4", 4)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "fairseq-train"
    fake.write_text('#!/usr/bin/env bash\nargs=("$@")\nfor ((i = 0; i < $#; i++)); do\n'
                    '  if [ "${args[$i]}" = --save-dir ]; then dir=${args[$((i + 1))]}; fi\ndone\n'
                    'printf "%s\\n" "$@" > "$dir/argv"\n')
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "OUT": str(out), "CMP": str(out / "cmp"), "PYTHON": sys.executable,
            "DISTILL_BEAM": "4", "SEEDS": "1", "PARALLEL": "1", "DECODE": "0"}


def test_compare_script_builds_each_systems_flags(tmp_path):
    env = fake_compare_out(tmp_path)
    env["SYSTEMS"] = "nat-ri-glat cmlm"
    env["NAT_EXTRA"] = "--glancing-ratio 0.2"  # extra flags come last, so they override the system's own
    r = subprocess.run(["bash", "examples/refinement_nat/compare-fairseq-nat.sh"], cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    glat = (Path(env["CMP"]) / "nat-ri-glat-s1" / "argv").read_text().split("\n")
    assert glat[0] == f"{env['OUT']}/distill-beam4/bin"  # the beam-4 targets
    line = " ".join(glat)
    for flags in ("--arch refinement_nat_tiny", "--train-steps 4", "--dae-prob 0.5", "--refine-from-update 600",
                  "--refiner-init decoder1", "--glancing-ratio 0.5", "--glancing-ratio-end 0.3",
                  "--glancing-anneal-updates 2000", "--seed 1", "--encoder-embed-dim 128"):
        assert f" {flags} " in f" {line} ", flags
    cmlm = " ".join((Path(env["CMP"]) / "cmlm-s1" / "argv").read_text().split("\n"))
    assert " --arch cmlm_transformer " in cmlm and " --label-smoothing 0.1 " in cmlm and "glancing" not in cmlm
    last = len(glat) - 1 - glat[::-1].index("--glancing-ratio")  # fairseq keeps a repeated flag's last value
    assert glat[last + 1] == "0.2"
    assert (Path(env["CMP"]) / "nat-ri-glat-s1" / ".trained").is_file()


def test_compare_script_names_an_unknown_system(tmp_path):
    env = fake_compare_out(tmp_path)
    env["SYSTEMS"] = "nat-ri glat"
    env["DISTILL_BEAM"] = "1"  # nat-ri would need greedy targets, which are not there: nothing is distilled first
    r = subprocess.run(["bash", "examples/refinement_nat/compare-fairseq-nat.sh"], cwd=REPO, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "unknown system glat (nat, nat-curr, nat-ri," in r.stderr
    assert not (Path(env["CMP"]) / "nat-ri-s1").exists(), "nothing trains before every name is checked"
    assert "distilling" not in r.stderr and not (Path(env["OUT"]) / "distill").exists()
