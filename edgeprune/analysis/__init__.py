"""Channel analysis: which channels are coupled, which may be pruned, and why the others may not."""

from edgeprune.analysis.analyze import analyze
from edgeprune.analysis.groups import ChannelAnalysis, ChannelGroup, FrozenReason, SliceSpec, TensorChannels

__all__ = ["ChannelAnalysis", "ChannelGroup", "FrozenReason", "SliceSpec", "TensorChannels", "analyze"]
