import os

# kubernetes.config reads $KUBECONFIG at import time; never let a test touch a real cluster.
os.environ.setdefault("KUBECONFIG", os.devnull)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
