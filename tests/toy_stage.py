"""A small stage for testing the runner itself (it wraps no named tool).

It hard-links each input's audio, can split an item into several records, reject some ids,
fail on others, and sleep to make runs slow enough to interrupt.
"""

from __future__ import annotations

import dataclasses
import os
import time

from audioprep.errors import ItemError
from audioprep.stage import ItemContext, Stage


class ToyStage(Stage):
    name = "toy"
    version = "1"

    @dataclasses.dataclass(frozen=True)
    class Params:
        fail_ids: tuple[str, ...] = ()
        reject_ids: tuple[str, ...] = ()
        crash_ids: tuple[str, ...] = ()
        split: int = 1
        sleep: float = 0.0
        tag: str = ""

    def setup(self) -> None:
        self.setup_pid = os.getpid()
        self.setups = getattr(self, "setups", 0) + 1

    def process(self, record, ctx: ItemContext):
        p = self.params
        time.sleep(p.sleep)
        if record["id"] in p.fail_ids:
            raise ItemError("asked to fail")
        if record["id"] in p.crash_ids:
            os._exit(9)  # a worker dying hard
        if record["id"] in p.reject_ids:
            ctx.reject(record, "asked to reject")
            return []
        src = ctx.input_audio(record)
        out = []
        for i in range(p.split):
            new_id = record["id"] if p.split == 1 else f"{record['id']}_{i}"
            audio = ctx.link(src, f"{new_id}{src.suffix}")
            out.append(
                {**record, "id": new_id, "audio": audio, "setup_pid": self.setup_pid, "tag": p.tag}
            )
        return out


class ToyCorpusStage(Stage):
    """A corpus stage: measures each item's duration, keeps those above the corpus median."""

    name = "toy-corpus"
    version = "1"
    needs_corpus = True

    @dataclasses.dataclass(frozen=True)
    class Params:
        sleep: float = 0.0

    def measure(self, record, ctx: ItemContext):
        time.sleep(self.params.sleep)
        return {"duration": record["duration"], "pid": os.getpid()}

    def decide(self, measurements):
        values = sorted(m["duration"] for m in measurements.values())
        return {"median": values[len(values) // 2]}

    def finish(self, record, measurement, decision, ctx: ItemContext):
        if measurement["duration"] < decision["median"]:
            ctx.reject(record, "below the median")
            return []
        src = ctx.input_audio(record)
        return [{**record, "audio": ctx.link(src, f"{record['id']}{src.suffix}")}]
