"""Masked translation end to end through fairseq-train / fairseq-generate and the iterref-* scripts."""
import json
import re
from collections import defaultdict

import pytest

from conftest import USER_DIR, cli, generate_refine, tagged_lines

pytestmark = pytest.mark.slow

N_TEST = 24
MASKED_FLAGS = ["--arch", "masked_translation_tiny", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
                "--encoder-layers", "1", "--encoder-attention-heads", "2", "--max-segment-positions", "32"]


@pytest.fixture(scope="module")
def masked_checkpoint(tiny_data, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("mt_ckpt")
    cli("fairseq-train", tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine",
        "--criterion", "masked_translation_loss", *MASKED_FLAGS, "--optimizer", "adam", "--lr", "1e-3",
        "--max-tokens", "1000", "--max-update", "12", "--cpu", "--save-dir", save_dir, "--no-epoch-checkpoints",
        "--log-format", "simple", "--seed", "1")
    return save_dir / "checkpoint_last.pt"


def history(out: str):
    found = defaultdict(list)
    for line in out.splitlines():
        m = re.match(r"^E-(\d+)_(\d+)\t(.*)$", line)
        if m:
            found[int(m.group(1))].append(m.group(3).split())
    return found


def test_train_and_generate_linear_time_with_history(tiny_data, masked_checkpoint):
    out = generate_refine(tiny_data, masked_checkpoint, "--beam", "1", "--decoding-strategy", "easy-first",
                          "--decoding-budget", "L", "--retain-iter-history", "--print-step").stdout
    hyps, steps, hist = tagged_lines(out, "H"), tagged_lines(out, "I"), history(out)
    assert sorted(hyps) == list(range(N_TEST))
    for i, h in hyps.items():
        words = h[0].split("\t")[1].split()
        assert int(steps[i][0]) == len(words) == len(hist[i])  # T = L passes, one canvas per step
        n_masks = [canvas.count("<mask>") for canvas in hist[i]]
        assert n_masks == list(range(len(words) - 1, -1, -1))  # one position filled per step
        assert "<mask>" not in words


def test_generate_constant_time_beam_and_length_statistics(tiny_data, masked_checkpoint):
    out = generate_refine(tiny_data, masked_checkpoint, "--beam", "2", "--position-beam", "2",
                          "--decoding-strategy", "least2most", "--decoding-budget", "3", "--tokens-per-step", "anneal",
                          "--length-candidates", "3", "--length-from", "train-stats", "--nbest", "3",
                          "--print-step").stdout
    hyps, steps = tagged_lines(out, "H"), tagged_lines(out, "I")
    assert sorted(hyps) == list(range(N_TEST))
    for i, cands in hyps.items():
        assert len(cands) == 3
        scores = [float(c.split("\t")[0]) for c in cands]
        assert scores == sorted(scores, reverse=True)
        assert {int(s) for s in steps[i]} == {3}


def test_one_model_translates_both_directions_and_rescoring(tiny_data, masked_checkpoint, ar_checkpoint):
    out = generate_refine(tiny_data, masked_checkpoint, "-s", "tgt", "-t", "src", "--beam", "1",
                          "--decoding-strategy", "left2right").stdout
    assert sorted(tagged_lines(out, "H")) == list(range(N_TEST))
    out = generate_refine(tiny_data, masked_checkpoint, "--beam", "1", "--length-candidates", "2",
                          "--rescore-path", ar_checkpoint, "--nbest", "2").stdout
    for cands in tagged_lines(out, "H").values():
        scores = [float(c.split("\t")[0]) for c in cands]
        assert len(cands) == 2 and scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)


def test_policy_training_learned_decoding_plots_and_benchmark(tiny_data, masked_checkpoint, ar_checkpoint,
                                                              tmp_path):
    policy = tmp_path / "policy.pt"
    proc = cli("iterref-train-policy", tiny_data, "--path", masked_checkpoint, "--out", policy,
               "--iterations", "3", "--generation-batch", "4", "--update-batch", "8", "--hidden-dim", "16",
               "--history", "2", "--max-examples", "50", "--cpu", "--log-every", "1")
    assert proc.returncode == 0
    summary = json.loads(proc.stdout.strip().splitlines()[-1])["summary"]
    assert policy.exists() and summary["iterations"] == 3 and summary["pairs"] == 50
    assert json.loads(policy.with_suffix(".json").read_text())["pairs"] == 50
    out = generate_refine(tiny_data, masked_checkpoint, "--beam", "1", "--decoding-strategy", "learned",
                          "--policy-path", policy, "--print-step").stdout
    assert sorted(tagged_lines(out, "H")) == list(range(N_TEST))

    plots = tmp_path / "plots"
    assert cli("iterref-plot-orders", tiny_data, "--path", masked_checkpoint, "--out", plots,
               "--gen-subset", "test", "--strategies", "left2right,uniform", "--clusters", "2", "--cpu").returncode == 0
    assert (plots / "orders.png").stat().st_size > 1000 and (plots / "energy.png").stat().st_size > 1000
    orders = json.loads((plots / "orders.json").read_text())["strategies"]
    # left-to-right decoding is the diagonal: every centroid increases
    for centroid in orders["left2right"]["centroids"]:
        assert centroid == sorted(centroid)

    refs = tmp_path / "test.ref"
    refs.write_text((tiny_data.parent / "raw" / "test.tgt").read_text())
    out_json = tmp_path / "bench.json"
    assert cli("iterref-benchmark-masked", tiny_data, "--path", masked_checkpoint, "--ar-path", ar_checkpoint,
               "--refs", refs, "--systems", "ar/b1,left2right/L/one/b1/len2,easy-first/4/ceil/b2/gold,"
               "least2most/L/one/b1/len2m/ar,least2most/4/anneal/b1/len2/mlp", "--max-examples", "10",
               "--target-lang", "en", "--out", out_json, "--cpu").returncode == 0
    result = json.loads(out_json.read_text())
    assert [r["system"] for r in result["rows"]][0] == "AR b=1" and len(result["rows"]) == 5
    assert result["rows"][4]["length_selection"] == "mean-logp" and result["rows"][3]["rescore"]
    assert all(r["sentences"] == 10 and 0 <= r["bleu"] <= 100 for r in result["rows"])
    assert result["rows"][2]["mean_passes"] == 4
    table = (tmp_path / "bench.md").read_text()
    assert table.startswith("| system")
    choice = {line.split(" | ")[0][2:]: line.split(" | ")[6] for line in table.splitlines()[2:7]}
    assert choice == {"AR b=1": "-", "left2right/L/one/b1/len2": "pseudo log-lik.", "easy-first/4/ceil/b2/gold": "-",
                      "least2most/L/one/b1/len2m/ar": "AR rescoring",
                      "least2most/4/anneal/b1/len2/mlp": "mean write log-p"}


@pytest.mark.parametrize("flags,error,message", [
    (["--decoding-budget", "0"], ValueError, "--decoding-budget must be L, 2L or a positive number"),
    (["--decoding-strategy", "best-first"], ValueError, "unknown decoding strategy 'best-first'"),
    (["--decoding-strategy", "learned", "--policy-path", "/nonexistent/policy.pt"], FileNotFoundError,
     "policy file not found"),
    (["--decoding-strategy", "learned"], ValueError, "needs --policy-path"),
])
def test_bad_generation_flags_are_one_clear_error(tiny_data, masked_checkpoint, flags, error, message):
    # in-process fairseq-generate (the CLI path is the same; a subprocess per case would only add start-up time)
    from fairseq import options
    from fairseq_cli import generate as fairseq_generate

    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, [str(tiny_data), "--user-dir", USER_DIR, "--task",
                                                "translation_refine", "--path", str(masked_checkpoint), "--cpu",
                                                "--batch-size", "5", *flags])
    with pytest.raises(error, match=re.escape(message)):
        fairseq_generate.main(args)


def test_masked_scripts_reject_a_checkpoint_of_another_model(tiny_data, tiny_checkpoint, masked_checkpoint,
                                                              tmp_path, capsys):
    # in-process (the subprocess exit status is in test_console_scripts.py): a refinement NAT is not a masked model
    from iterref_fairseq.cli import benchmark_masked, plot_orders, train_policy

    for module, extra in ((train_policy, ["--out", tmp_path / "p.pt"]), (plot_orders, ["--out", tmp_path / "pl"]),
                          (benchmark_masked, ["--out", tmp_path / "b.json", "--systems", "left2right/L/one/b1/len1"])):
        assert module.main([str(tiny_data), "--path", str(tiny_checkpoint), "--cpu", *map(str, extra)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert f"{tiny_checkpoint} is not a masked_translation checkpoint" in err and "Traceback" not in err
    assert benchmark_masked.main([str(tiny_data), "--path", str(masked_checkpoint), "--out", str(tmp_path / "b.json"),
                                  "--systems", "ar/b1", "--cpu"]) == 2
    assert "need --ar-path" in capsys.readouterr().err
    assert plot_orders.main([str(tiny_data), "--path", str(masked_checkpoint), "--out", str(tmp_path / "pl"),
                             "--gen-subset", "nosuch", "--cpu"]) == 2
    assert "--gen-subset nosuch" in capsys.readouterr().err
