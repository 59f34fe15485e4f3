"""benchpilot runner: runs benchmark cases locally or as one shard in a pod."""

__version__ = "0.1.0"
