import os

os.environ.setdefault("BENCHPILOT_RESYNC_SECONDS", "0.3")  # read when the handlers module is imported

import kmock  # noqa: E402
import pytest_asyncio  # noqa: E402

from tests.operator.cluster import Cluster, register  # noqa: E402


@pytest_asyncio.fixture(loop_scope="session")
async def cluster():
    """An emulated Kubernetes API per test (in-process and cheap): no test's runs load another's operator."""
    async with kmock.KubernetesEmulator() as k, kmock.Server(k) as srv:
        register(k)
        c = Cluster(k, str(srv.url))
        yield c
        await c.close()
