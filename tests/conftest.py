import os

# kubernetes.config reads $KUBECONFIG at import time; never let a test touch a real cluster.
os.environ.setdefault("KUBECONFIG", os.devnull)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def fake_llm():
    """One local OpenAI-compatible server for the whole session (behaviour chosen by model name)."""
    from tests.servers.fake_llm import ServerThread

    server = ServerThread().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs():
    """One real SeaweedFS S3 server for the session; tests may stop and start it."""
    from tests.servers.s3 import SeaweedFS

    server = SeaweedFS().start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def moto_s3():
    from tests.servers.s3 import Moto

    server = Moto().start()
    yield server
    server.close()
