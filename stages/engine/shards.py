"""Resumable, data-parallel generation for the prompts, responses and judge stages.

    work = Work("responses@1", items, Task(cfg, n=4), seed, model_dir, p.backend, p.shards)
    gens = work.run()          # {item id: [{"text", "n_tokens", "probs"}, ...]}
    ...write the stage's output atomically...
    work.close()               # drop the committed shards

A stage's work items (id, chat messages) are sorted by id and cut into shards of `shards.size`.
Each shard is generated with its own seed, derive_seed(stage seed, the shard's ids), so its rows do
not depend on what else ran, and committed as a parquet part (atomic write) in a folder DVC never
deletes: <shards.work_dir>/<stage>/<key>/part-00003.parquet. <key> hashes the items, the task, the
seed, the shard size, the backend params and the model files, so changed inputs never reuse stale
parts. A rerun skips committed shards; `shards.workers` processes take shards w, w+N, ...; the rows
are the same for any number of workers or interruptions. Ctrl-C keeps what is committed and exits
130 with one line.

One run of a stage at a time: a Work holds an exclusive lock, <shards.work_dir>/<stage>.lock, from its
start until the stage's main ends, and a second run of the same stage is refused at once (without the lock
it would delete the first run's shards as stale). A work folder deleted during the run is reported as
such, not as a missing part after everything else was generated.
"""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import shutil
import signal
import sys
from pathlib import Path

from stages.core import errors, rows
from stages.core import params as P
from stages.core.errors import Interrupted, SrlmError
from stages.engine.models import check_model_dir
from stages.engine.task import Task, run

INTERRUPTED = Interrupted.exit_code  # what a worker process exits with on Ctrl-C


def _fingerprint(model: Path) -> list:
    # names, sizes and mtimes: cheap for a 70B folder; a rewritten model always changes them
    files = sorted(f for f in model.rglob("*") if f.is_file())
    return [[f.relative_to(model).as_posix(), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


_locks: dict[Path, list] = {}  # lock file -> [open file, Works of this process holding it]


def _lock(path: Path, stage: str) -> None:
    """Take the stage's lock, or refuse at once if another process holds it. Re-entrant within a process."""
    if path in _locks:
        _locks[path][1] += 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel when the process dies
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise SrlmError(
                f"error: {stage} is already running (process {holder} holds {path}); wait for it to finish, "
                f"or stop it and rerun to resume"
            ) from None
        try:  # the previous holder may have deleted the file between our open and our lock: lock the new one
            same = os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            f.truncate(0)
            f.write(f"{os.getpid()}\n")
            f.flush()
            _locks[path] = [f, 1]
            return
        f.close()


def _unlock(path: Path) -> None:
    held = _locks.get(path)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        path.unlink(missing_ok=True)  # while still locked, so no one locks a file about to vanish
        held[0].close()
        del _locks[path]


def _run_shard(backend, task: Task, items: list[tuple[str, list[dict]]], seed: int, desc: str) -> list[dict]:
    gens = run(backend, task, items, seed, desc)
    return [{"item": i, "sample": k, **g} for i, _ in items for k, g in enumerate(gens[i])]


def _worker(
    work: "Work", todo: list[int], threads: int | None, parent: int | None, devices: str | None = None
) -> None:
    """Generate and commit the shards in `todo` (in a worker process, or in the stage itself)."""
    from stages.engine.backend import make_backend

    if not todo:  # everything committed: no need to load the model
        return
    try:
        if parent is not None:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # see errors.interruptible
        if devices is not None:  # before torch is imported: this worker sees only its own GPUs
            os.environ["CUDA_VISIBLE_DEVICES"] = devices
        if threads:
            import torch

            torch.set_num_threads(threads)
        backend = make_backend(work.backend_cfg, work.model)
        for s in todo:
            if parent is not None and os.getppid() != parent:
                return  # the stage was killed: stop instead of working for nobody
            shard = work.shards[s]
            before = backend.truncated_prompts
            recs = _run_shard(
                backend, work.task, shard, work.shard_seed(s), f"{work.stage} shard {s + 1}/{len(work.shards)}"
            )
            work.check_dir()  # before the commit would make the folder again
            meta = {"model": backend.model_name, "truncated_prompts": backend.truncated_prompts - before}
            rows.write_json(meta, work.part(s).with_suffix(".json"))
            rows.write(rows.frame(recs, "generations"), work.part(s), "generations")  # the parquet commits the shard
        backend.close()
    except KeyboardInterrupt:
        if parent is None:
            raise
        sys.exit(INTERRUPTED)  # the parent reports; no traceback from each worker
    except SrlmError as e:
        if parent is None:
            raise
        sys.exit(str(e))  # one line from the worker; the parent says which worker failed


class Work:
    def __init__(
        self,
        stage: str,
        items: list[tuple[str, list[dict]]],
        task: Task,
        seed: int,
        model: str | Path,
        backend_cfg: P.Backend,
        cfg: P.Shards,
        workers: int | None = None,
        source: str = "input",
    ):
        if not items:
            raise SrlmError(f"error: {stage}: {source} has no rows to work on")
        self.stage, self.task, self.model, self.backend_cfg = stage, task, Path(model), backend_cfg
        self.workers = workers or cfg.workers
        unique = dict(sorted(items, key=lambda it: it[0]))  # equal ids are equal content
        ids = list(unique)
        self.shards = [[(i, unique[i]) for i in ids[k : k + cfg.size]] for k in range(0, len(ids), cfg.size)]
        self.seed = seed
        check_model_dir(self.model)
        key = rows.content_id(
            stage,
            task.sampling.model_dump(),
            task.n,
            task.candidates,
            task.prefill,
            seed,
            cfg.size,
            backend_cfg.model_dump(),
            _fingerprint(self.model),
            list(unique.items()),
        )
        root = (Path.cwd() / cfg.work_dir).resolve()
        if not root.is_relative_to(Path.cwd().resolve()):  # a symlink out of the repo
            raise SrlmError(f"error: shards.work_dir {cfg.work_dir} resolves outside the repo ({root})")
        self.dir = root / stage.replace("/", "_") / key
        self.lock = root / f"{self.dir.parent.name}.lock"
        try:
            _lock(self.lock, stage)
            for stale in self.dir.parent.iterdir() if self.dir.parent.exists() else []:
                if stale != self.dir:  # parts of a run with other inputs or params can never be used
                    shutil.rmtree(stale, ignore_errors=True)
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            _unlock(self.lock)
            raise SrlmError(f"error: {stage}: could not make the work folder {self.dir}: {e.strerror or e}") from None
        except BaseException:
            _unlock(self.lock)
            raise
        self.closing = False
        if errors.running():  # the stage's main decides when: after its outputs are in place
            errors.on_finish(self._finish)
        self.model_name = ""
        self.truncated_prompts = 0
        self.resumed = 0

    def check_dir(self) -> None:
        """The work folder must still be there: deleted mid-run, the shards committed so far are gone."""
        if not self.dir.is_dir():
            raise SrlmError(f"error: {self.stage}: work folder {self.dir} removed; rerun to resume")

    def shard_seed(self, s: int) -> int:
        return rows.derive_seed(self.seed, [i for i, _ in self.shards[s]])

    def part(self, s: int) -> Path:
        return self.dir / f"part-{s:05d}.parquet"

    def done(self) -> list[int]:
        return [s for s in range(len(self.shards)) if self.part(s).exists()]

    def run(self) -> dict[str, list[dict]]:
        """Generate the missing shards, then return every item's generations in sample order."""
        done = set(self.done())
        todo = [s for s in range(len(self.shards)) if s not in done]
        self.resumed = len(done)
        if done:
            print(f"{self.stage}: resuming, {len(done)} of {len(self.shards)} shards already done", file=sys.stderr)
        kept = lambda: (
            f"{self.stage}: interrupted; {len(self.done())} of {len(self.shards)} shards kept, rerun to resume"
        )
        with errors.interruptible(kept):  # Ctrl-C: one line, exit 130
            if self.workers == 1 or len(todo) < 2:
                _worker(self, todo, None, None)
            else:
                self._parallel(todo)
        return self._assemble()

    def _parallel(self, todo: list[int]) -> None:
        n = min(self.workers, len(todo))
        threads = max(1, (os.cpu_count() or 1) // n)
        ctx = mp.get_context("spawn")  # a fresh interpreter: torch and tokenizers do not survive fork
        # on a multi-GPU host worker w gets its own tensor_parallel_size GPUs
        tp = self.backend_cfg.tensor_parallel_size
        gpus = (os.environ.get("CUDA_VISIBLE_DEVICES") or ",".join(map(str, range(n * tp)))).split(",")
        procs = [
            ctx.Process(
                target=_worker,
                name=f"{self.stage}-{w}",
                args=(self, todo[w::n], threads, os.getpid(), ",".join(gpus[w * tp : (w + 1) * tp])),
            )
            for w in range(n)
        ]
        try:
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join()
        finally:
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
                    proc.join()
        failed = [p.name for p in procs if p.exitcode not in (0, None)]
        if any(p.exitcode == INTERRUPTED for p in procs):
            raise KeyboardInterrupt
        self.check_dir()  # say why the workers failed
        if failed:
            raise SrlmError(
                f"error: {self.stage}: worker(s) {failed} failed; {len(self.done())} of {len(self.shards)} "
                f"shards kept, rerun to resume"
            )

    def _assemble(self) -> dict[str, list[dict]]:
        self.check_dir()
        missing = [s for s in range(len(self.shards)) if not self.part(s).exists()]
        if missing:  # the folder was deleted and made again by a later shard's commit
            raise SrlmError(
                f"error: {self.stage}: work folder {self.dir} removed during the run ({len(missing)} committed "
                f"shards gone); rerun to resume"
            )
        out: dict[str, list[dict]] = {}
        for s, shard in enumerate(self.shards):
            part = rows.read(self.part(s), "generations")
            if set(part["item"]) != {i for i, _ in shard}:
                self.part(s).unlink()
                raise SrlmError(f"error: {self.part(s)} does not hold shard {s}'s items; removed it, rerun to redo it")
            meta = rows.read_json(self.part(s).with_suffix(".json"), missing_ok=False)
            self.model_name = meta["model"]
            self.truncated_prompts += meta["truncated_prompts"]
            for r in part.sort("item", "sample", maintain_order=True).iter_rows(named=True):
                out.setdefault(r["item"], []).append(
                    {"text": r["text"], "n_tokens": r["n_tokens"], "truncated": r["truncated"], "probs": r["probs"]}
                )
        return out

    def close(self) -> None:
        """The stage's output is written: the committed shards are no longer needed. Inside a stage's @entry
        main they are deleted when it returns, after its outputs are renamed into place (rows.all_or_none)."""
        self.closing = True
        if not errors.running():
            self._finish(True)

    def _finish(self, ok: bool) -> None:
        if ok and self.closing:
            shutil.rmtree(self.dir, ignore_errors=True)
            try:
                self.dir.parent.rmdir()  # only when empty
            except OSError:
                pass
        _unlock(self.lock)
        try:
            self.dir.parent.parent.rmdir()  # only when empty: other stages may have work in flight
        except OSError:
            pass
