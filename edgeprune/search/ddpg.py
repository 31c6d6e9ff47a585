"""DDPG for one continuous action (a group's preserve ratio), with AMC's defaults (`AgentSettings`).

Deterministic for a seed on CPU: the networks are initialised under ``torch.manual_seed`` inside a forked
RNG (the caller's torch state is left as it was), and every other random draw (exploration, replay sampling)
comes from one numpy Generator.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from edgeprune.search.settings import AgentSettings


def _mlp(inputs: int, hidden: int, last: nn.Module | None) -> nn.Sequential:
    layers = [nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)]
    return nn.Sequential(*layers, *([last] if last is not None else []))


class ReplayBuffer:
    """A ring buffer of (state, action, reward, next state, terminal) transitions."""

    def __init__(self, capacity: int, state_size: int) -> None:
        self.capacity, self.size, self.next = capacity, 0, 0
        self.states = np.zeros((capacity, state_size), dtype=np.float32)
        self.next_states = np.zeros((capacity, state_size), dtype=np.float32)
        self.actions = np.zeros((capacity, 1), dtype=np.float32)
        self.rewards = np.zeros((capacity, 1), dtype=np.float32)
        self.terminal = np.zeros((capacity, 1), dtype=np.float32)

    def add(self, state, action: float, reward: float, next_state, terminal: bool) -> None:
        i = self.next
        self.states[i], self.actions[i], self.rewards[i] = state, action, reward
        self.next_states[i], self.terminal[i] = next_state, float(terminal)
        self.next, self.size = (i + 1) % self.capacity, min(self.size + 1, self.capacity)

    def sample(self, count: int, rng: np.random.Generator):
        rows = rng.integers(0, self.size, size=count)
        return self.states[rows], self.actions[rows], self.rewards[rows], self.next_states[rows], self.terminal[rows]


class DDPGAgent:
    """Actor mu(s) in [0, 1] (sigmoid) and critic Q(s, a), each with a soft-updated target copy."""

    def __init__(self, state_size: int, settings: AgentSettings, capacity: int, seed: int) -> None:
        self.settings = settings
        self.rng = np.random.default_rng(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor = _mlp(state_size, settings.hidden, nn.Sigmoid())
            self.critic = _mlp(state_size + 1, settings.hidden, None)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=settings.actor_lr)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=settings.critic_lr)
        self.buffer = ReplayBuffer(capacity, state_size)
        self.baseline: float | None = None

    def act(self, state: np.ndarray, episode: int, low: float, high: float) -> float:
        """Uniform in [low, high] during the warm-up; then the actor's action with truncated-normal noise."""
        s = self.settings
        if episode < s.warmup:
            return float(self.rng.uniform(low, high))
        with torch.no_grad():
            mean = float(self.actor(torch.from_numpy(state[None]))[0, 0])
        sigma = s.sigma * s.sigma_decay ** (episode - s.warmup)
        return truncated_normal(self.rng, mean, sigma, low, high)

    def remember(self, states, actions, reward: float) -> None:
        """One episode: every step gets the episode's reward; the last step is terminal."""
        for t, (state, action) in enumerate(zip(states, actions)):
            last = t == len(states) - 1
            self.buffer.add(state, action, reward, states[t if last else t + 1], last)

    def update(self) -> tuple[float, float]:
        """One gradient step of critic and actor on a replay batch; returns (critic loss, actor loss)."""
        s = self.settings
        if self.buffer.size == 0:
            return 0.0, 0.0
        states, actions, rewards, next_states, terminal = (
            torch.from_numpy(a) for a in self.buffer.sample(s.batch, self.rng)
        )
        mean = float(rewards.mean())
        self.baseline = mean if self.baseline is None else self.baseline + s.baseline_alpha * (mean - self.baseline)
        rewards = rewards - self.baseline
        with torch.no_grad():
            next_q = self.critic_target(torch.cat([next_states, self.actor_target(next_states)], dim=1))
            target = rewards + s.discount * (1.0 - terminal) * next_q
        critic_loss = nn.functional.mse_loss(self.critic(torch.cat([states, actions], dim=1)), target)
        self.critic_optim.zero_grad()
        critic_loss.backward()
        self.critic_optim.step()
        actor_loss = -self.critic(torch.cat([states, self.actor(states)], dim=1)).mean()
        self.actor_optim.zero_grad()
        actor_loss.backward()
        self.actor_optim.step()
        _soft_update(self.actor_target, self.actor, s.tau)
        _soft_update(self.critic_target, self.critic, s.tau)
        return float(critic_loss.detach()), float(actor_loss.detach())


def _soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for t, p in zip(target.parameters(), source.parameters()):
            t.mul_(1.0 - tau).add_(p, alpha=tau)


def truncated_normal(rng: np.random.Generator, mean: float, sigma: float, low: float, high: float) -> float:
    """A normal draw around ``mean`` kept inside [low, high] by redrawing (then clipping, if it keeps missing)."""
    for _ in range(100):
        value = rng.normal(mean, sigma) if sigma > 0 else mean
        if low <= value <= high:
            return float(value)
    return float(np.clip(mean, low, high))
