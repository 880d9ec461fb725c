"""Adaptive batching with a real event loop and a fake runtime that records its calls."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from dockyard.serving.codec import TensorError
from dockyard.serving.metrics import Metrics
from dockyard.serving.predictors import Batched, Direct, Runner
from dockyard.serving.runtimes.base import Array, Signature, TensorSpec


class Doubler:
    """y = 2x per row; 'sum' = row sums; rows with a negative first value make it fail."""

    signature = Signature(
        (TensorSpec("x", "FP64", (-1, 2)),),
        (TensorSpec("y", "FP64", (-1, 2)), TensorSpec("sum", "FP64", (-1,))),
    )

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.gate: threading.Event | None = None

    def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        x = inputs["x"]
        if self.gate is not None:
            self.gate.wait(5)
        if (x[:, 0] < 0).any():
            raise TensorError("negative input")
        self.calls.append(len(x))
        time.sleep(self.delay)
        out = {"y": x * 2, "sum": x.sum(axis=1)}
        return {k: out[k] for k in outputs}

    def unload(self) -> None:
        pass


def runner(runtime: Doubler, inline: bool = False) -> Runner:
    return Runner(runtime, inline, Metrics().bind("m", "1"))  # type: ignore[arg-type]


def rows(*values: float) -> dict[str, Array]:
    return {"x": np.array([[v, v] for v in values], dtype=np.float64)}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_requests_are_merged_and_split_back() -> None:
    runtime = Doubler(delay=0.05)

    async def main() -> list[dict[str, Array]]:
        b = Batched(runner(runtime), max_batch_size=64, max_latency_ms=5)
        first = asyncio.create_task(b.predict(rows(1), ["y"]))
        await asyncio.sleep(0.01)  # the first batch is computing: the next ones queue up
        rest = [
            asyncio.create_task(
                b.predict(rows(*range(10 * i, 10 * i + i + 1)), ["y", "sum"] if i % 2 else ["sum"])
            )
            for i in range(1, 5)
        ]
        results = [await first, *[await t for t in rest]]
        await b.close()
        return results

    results = run(main())
    assert runtime.calls == [1, 2 + 3 + 4 + 5]  # one call for the four queued requests
    assert results[0]["y"].tolist() == [[2, 2]] and set(results[0]) == {"y"}
    for i, result in enumerate(results[1:], start=1):
        values = list(range(10 * i, 10 * i + i + 1))
        assert result["sum"].tolist() == [2 * v for v in values]
        if i % 2:
            assert result["y"].tolist() == [[2 * v, 2 * v] for v in values]
        else:
            assert set(result) == {"sum"}  # outputs filtering per request


def test_a_lone_request_does_not_wait_for_company() -> None:
    runtime = Doubler()

    async def main() -> dict[str, Array]:
        # a one-minute window: if the batcher waited for company, this would time out
        b = Batched(runner(runtime, inline=True), max_batch_size=64, max_latency_ms=60_000)
        result = await asyncio.wait_for(b.predict(rows(1), ["y"]), timeout=5)
        await b.close()
        return result

    assert run(main())["y"].tolist() == [[2, 2]]


def test_max_batch_size_is_respected() -> None:
    runtime = Doubler(delay=0.02)

    async def main() -> None:
        b = Batched(runner(runtime), max_batch_size=4, max_latency_ms=1)
        tasks = [asyncio.create_task(b.predict(rows(i), ["y"])) for i in range(10)]
        await asyncio.gather(*tasks)
        big = await b.predict(rows(*range(9)), ["y"])  # larger than a batch: runs alone
        assert big["y"].shape == (9, 2)
        await b.close()

    run(main())
    assert max(runtime.calls[:-1]) <= 4 and sum(runtime.calls) == 10 + 9


def test_one_malformed_request_fails_alone() -> None:
    runtime = Doubler(delay=0.03)

    async def main() -> list[Any]:
        b = Batched(runner(runtime), max_batch_size=64, max_latency_ms=5)
        blocker = asyncio.create_task(b.predict(rows(0), ["y"]))
        await asyncio.sleep(0.01)
        tasks = [asyncio.create_task(b.predict(rows(v), ["y"])) for v in (1, -1, 2)]
        results = await asyncio.gather(blocker, *tasks, return_exceptions=True)
        await b.close()
        return results

    results = run(main())
    assert results[1]["y"].tolist() == [[2, 2]]
    assert isinstance(results[2], TensorError)
    assert results[3]["y"].tolist() == [[4, 4]]


def test_a_cancelled_request_never_blocks_the_batch() -> None:
    runtime = Doubler()
    runtime.gate = threading.Event()

    async def main() -> list[Any]:
        b = Batched(runner(runtime), max_batch_size=64, max_latency_ms=5)
        blocker = asyncio.create_task(b.predict(rows(1), ["y"]))
        await asyncio.sleep(0.02)  # the first batch is stuck in the runtime
        gone = asyncio.create_task(b.predict(rows(2), ["y"]))
        kept = asyncio.create_task(b.predict(rows(3), ["y"]))
        await asyncio.sleep(0.01)
        gone.cancel()  # the client went away while queued
        runtime.gate.set()  # type: ignore[union-attr]
        result = await asyncio.wait_for(kept, 5)
        await blocker
        await b.close()
        return [result, gone.cancelled()]

    result, cancelled = run(main())
    assert cancelled and result["y"].tolist() == [[6, 6]]
    assert runtime.calls == [1, 1]  # the cancelled request was dropped from the batch


def test_different_shapes_are_not_merged() -> None:
    runtime = Doubler(delay=0.03)

    async def main() -> None:
        b = Batched(runner(runtime), max_batch_size=64, max_latency_ms=5)
        first = asyncio.create_task(b.predict(rows(1), ["sum"]))
        await asyncio.sleep(0.01)
        wide = asyncio.create_task(b.predict({"x": np.ones((1, 3))}, ["sum"]))
        narrow = asyncio.create_task(b.predict(rows(2), ["sum"]))
        results = await asyncio.gather(first, wide, narrow)
        assert results[1]["sum"].tolist() == [3.0] and results[2]["sum"].tolist() == [4.0]
        await b.close()

    run(main())
    assert runtime.calls == [1, 1, 1]


def test_direct_runs_each_request() -> None:
    runtime = Doubler()

    async def main() -> None:
        d = Direct(runner(runtime))
        out = await d.predict(rows(1, 2), ["sum"])
        assert out["sum"].tolist() == [2.0, 4.0]
        with pytest.raises(TensorError, match="disagree on the batch size"):
            await d.predict({"x": np.ones((2, 2)), "z": np.ones((3, 2))}, ["sum"])
        await d.close()

    run(main())
