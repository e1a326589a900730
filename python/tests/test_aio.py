"""The asyncio forms (without a GraphServer: queues; the graph's are run across processes by
test/python-interop.test.ts)."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from plexus import aio
from plexus.errors import TimeoutError


def test_queue_put_get_and_async_for() -> None:
    async def main() -> None:
        async with await aio.queue_server(mode="reliable") as srv:
            async with await aio.queue_client(srv.sync.url, mode="reliable") as cli:  # type: ignore[attr-defined]
                put = asyncio.ensure_future(cli.put({"v": np.arange(3.0)}))
                got = await srv.get(5)
                assert got.value["v"].tolist() == [0.0, 1.0, 2.0]
                await asyncio.sleep(0.05)
                assert not put.done(), "reliable: the put waits for the release"
                got.release()
                await asyncio.wait_for(put, 5)


                async def send() -> None:  # (reliable, one slot: "b" goes once "a" was released)
                    await srv.put("a", got.peer)
                    await srv.put("b", got.peer)

                sending = asyncio.ensure_future(send())
                seen = []
                async for m in cli:
                    seen.append(m.value)
                    if len(seen) == 2:
                        m.release()
                        break
                assert seen == ["a", "b"]
                await asyncio.wait_for(sending, 5)

    asyncio.run(main())


def test_a_cancelled_get_loses_nothing_and_timeouts_raise() -> None:
    async def main() -> None:
        async with await aio.queue_server() as srv:
            async with await aio.queue_client(srv.sync.url) as cli:  # type: ignore[attr-defined]
                with pytest.raises(TimeoutError):
                    await srv.get(0.1)
                waiting = asyncio.ensure_future(srv.get())
                await asyncio.sleep(0.05)
                waiting.cancel()
                await cli.put("kept")  # arrives while the cancelled get's thread still waits
                await asyncio.sleep(0.4)
                assert (await srv.get(1)).value == "kept"

    asyncio.run(main())
