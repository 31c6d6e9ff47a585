"""The options of the RL search (`--strategy rl`); the command receives them as one ``search`` settings object."""

from __future__ import annotations

import functools

import click


def search_options(command):
    """--reward, --episodes, --search-time, --search-images and --rl-set KEY=VALUE (any other search or agent setting)."""
    options = [
        click.option("--reward", type=click.Choice(["entropy", "accuracy", "agreement"]), default="entropy",
                     show_default=True, help="rl: entropy (label-free, spatial entropy of the kept maps), accuracy "
                     "(needs labels) or agreement (label-free, with the original model's predictions)."),
        click.option("--episodes", type=int, default=300, show_default=True, help="rl: search episodes."),
        click.option("--search-time", type=float, help="rl: stop the search after this many seconds."),
        click.option("--search-images", type=int, default=64, show_default=True,
                     help="rl: calibration images every episode is judged on."),
        click.option("--rl-set", multiple=True, metavar="KEY=VALUE",
                     help="rl: any other setting, e.g. warmup=100, sigma=0.5, sigma_decay=0.95, actor_lr=1e-4, "
                     "critic_lr=1e-3, tau=0.01, batch=64, replay_per_group=100, top_k=5, rerank=agreement, "
                     "rerank_images=128, min_ratio=0.2, spend_budget=true."),
    ]
    for option in reversed(options):
        command = option(command)

    @functools.wraps(command)
    def wrapper(*args, reward, episodes, search_time, search_images, rl_set, **kwargs):
        from edgeprune.search.settings import SearchSettings, parse_pairs

        settings = SearchSettings(reward=reward, episodes=episodes, time_limit=search_time, images=search_images)
        kwargs["search"] = settings.with_options(parse_pairs(rl_set))
        return command(*args, **kwargs)

    return wrapper
