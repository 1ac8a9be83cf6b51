"""Learned coordinate selection: policy network, PPO on a small deterministic environment, edit-distance reward."""
import torch

from iterref_fairseq.cli.train_policy import PPOConfig, PPOTrainer, edit_distance
from iterref_fairseq.generators.strategies import StrategyInput, build_strategy
from iterref_fairseq.modules.coordinate_policy import CoordinatePolicy, load_policy, save_policy


class GoodPositionsEnv:
    """L positions, 3 of them 'good' (feature 0 of h_i is +1, else -1, other features noise); T = 3 picks without
    replacement; reward 1 for a good position. Random choice earns 3*3/8 ≈ 1.1 per episode, the optimum 3."""

    def __init__(self, n=16, length=8, dim=6, seed=0):
        self.n, self.length, self.dim = n, length, dim
        self.gen = torch.Generator().manual_seed(seed)

    def reset(self):
        self.t = 0
        scores = torch.rand(self.n, self.length, generator=self.gen)
        self.good = scores.argsort(1).argsort(1) < 3
        noise = torch.randn(self.n, self.length, self.dim, generator=self.gen) * 0.5
        noise[:, :, 0] = self.good.float() * 2 - 1
        self.hidden = noise
        self.cand = torch.ones(self.n, self.length, dtype=torch.bool)
        return self._obs()

    def _obs(self):
        return {"hidden": self.hidden, "candidates": self.cand.clone(),
                "valid": torch.ones(self.n, self.length, dtype=torch.bool)}

    def step(self, actions):
        rows = torch.arange(self.n)
        reward = (self.good[rows, actions] & self.cand[rows, actions]).float()
        self.cand[rows, actions] = False
        self.t += 1
        done = torch.full((self.n,), self.t >= 3)
        if self.t >= 3:
            self.cand[:] = False
        return self._obs(), reward, done


def test_ppo_improves_return_on_deterministic_environment():
    torch.manual_seed(0)
    policy = CoordinatePolicy(input_dim=6, hidden_dim=32, history_size=0, value_hidden=16)
    trainer = PPOTrainer(policy, PPOConfig(lr=3e-3, buffer_size=500, update_batch=32, ppo_epochs=2, gamma=0.9),
                         seed=0)
    returns = trainer.train(GoodPositionsEnv(), iterations=40, log_every=0)
    before, after = sum(returns[:5]) / 5, sum(returns[-5:]) / 5
    assert before < 1.8
    assert after > before + 0.8 and after > 2.3
    assert len(trainer.buffer) <= 500  # FIFO buffer bounded


def test_policy_with_history_runs_and_is_used_by_learned_strategy(tmp_path):
    torch.manual_seed(0)
    policy = CoordinatePolicy(input_dim=6, hidden_dim=16, history_size=3, value_hidden=8)
    trainer = PPOTrainer(policy, PPOConfig(lr=1e-3, buffer_size=100, update_batch=8, ppo_epochs=1), seed=0)
    trainer.train(GoodPositionsEnv(n=4), iterations=2, log_every=0)
    assert trainer.buffer[0]["hist"].shape == (3, 6)
    path = tmp_path / "policy.pt"
    save_policy(policy, path)
    loaded = load_policy(path)
    strategy = build_strategy("learned", policy_path=str(path))
    hidden = torch.randn(2, 5, 6)
    cand = torch.tensor([[True, True, False, True, True], [False, True, True, True, True]])
    tokens = torch.zeros(2, 5, dtype=torch.long)
    inp = StrategyInput(negent=torch.zeros(2, 5), current_logp=torch.zeros(2, 5), tokens=tokens,
                        masked=cand, valid=torch.ones_like(cand), candidates=cand,
                        step=torch.zeros(2, dtype=torch.long), hidden=hidden,
                        history=torch.randn(2, 3, 6), history_count=torch.tensor([0, 2]))
    expected = loaded.logits(hidden, inp.history, inp.history_count, cand).argmax(-1)
    assert torch.equal(strategy.select(inp).squeeze(1), expected)
    assert not bool((~cand).gather(1, strategy.select(inp)).any())


def test_corrupt_policy_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a policy")
    try:
        load_policy(bad)
    except ValueError as err:
        assert "cannot read policy file" in str(err) and "iterref-train-policy" in str(err)
    else:
        raise AssertionError("a corrupt policy file must be rejected")


def test_edit_distance_reward_counts_masks_as_mismatches():
    ref = [5, 6, 7]
    assert edit_distance([5, 6, 7], ref) == 0
    assert edit_distance([-1, -1, -1], ref) == 3  # all masks
    assert edit_distance([5, -1, -1], ref) == 2  # one correct symbol: reward 1
    assert edit_distance([], ref) == 3 and edit_distance([5, 7], ref) == 1
