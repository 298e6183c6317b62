"""One GPU check of the search pipeline (run by scripts/gpu_check.sh; see its header for the procedure).

1. Every method, CIFAR-10-sized random data (C=16, N=5, 32x32, batch 64, ENAS 128): our step against xautodl's,
   interleaved in this process, eager fp32 (both sides), then ours with the fast options (bf16 autocast,
   channels-last, TF32) against the same eager reference; DARTS-V1 also with torch.compile of the mixture forward.
2. K seeds of one method at once on the one GPU (K = 1, 4, 8, 16 worker processes, as ``nas-suite run --workers K
   --device cuda`` runs them): aggregate steps/s for DARTS-V1 and GDAS, eager and fast.
3. A projected full E2NAS search time from E2NAS's expensive regime (``nasbench_suite_methods.e2nas.bench_step``: archive full so the
   novelty term is live, gamma 0.5, three distinct cells in the weight step, timed interleaved with GDAS steps on
   the same supernet and batches): E2NAS ms/step x 250 epochs x 391 steps for one seed, eager; the fast options'
   and the K-seeds figures scale GDAS's measured times by that E2NAS/GDAS ratio. (Step 1's E2NAS row times the
   first steps of a fresh search: archive empty, a_prev = a_t, two weight passes, the cheap regime.)

Everything lands in one JSON (``--out``); a deadline keeps the whole under the time given (``--budget-s``), and
whatever was skipped for time is listed in it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import asdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

EPOCHS, STEPS_PER_EPOCH = 250, 391


def _worker(rank: int, cmd_q, res_q) -> None:
    """A K-seeds worker: one process per seed, like the local pool's workers; all on cuda:0.

    Messages: ("prep", method, fast_kw) builds (once) and warms up that method, answers "ready";
    ("go", steps, start_at) waits for the common start time, runs ``steps`` steps, answers (start, end).
    """
    import torch

    torch.set_num_threads(1)
    from nasbench_suite.timing import SIZES, FastOptions, OurStepper, device_sync, make_stream, timing_protocol

    steppers: dict = {}
    current = None
    while True:
        msg = cmd_q.get()
        if msg is None:
            return
        try:
            if msg[0] == "prep":
                _, method, fast_kw, size, device = msg
                dev = torch.device(device)
                key = (method, tuple(sorted(fast_kw.items())))
                if key not in steppers:
                    fast = FastOptions(**fast_kw)
                    config = timing_protocol(method, size)
                    st = OurStepper(method, config, dev, fast=fast, seed=rank)
                    bs, hw = config.protocol.batch_size, SIZES[size]["hw"]
                    tr = make_stream(4 * bs, hw, bs, dev, 2 * rank + 1, fast.channels_last)
                    va = make_stream(4 * bs, hw, bs, dev, 2 * rank + 2, fast.channels_last)
                    steppers[key] = (st, [(next(tr), next(va)) for _ in range(4)])
                current = steppers[key]
                st, pool = current
                for i in range(3):  # warm-up (cuDNN autotune, allocator)
                    st.step(*pool[i % 4])
                device_sync(dev)
                res_q.put(("ready", rank))
            else:
                _, steps, start_at = msg
                st, pool = current
                while time.time() < start_at:
                    time.sleep(0.0005)
                t0 = time.time()
                for i in range(steps):
                    st.step(*pool[i % 4])
                device_sync(dev)
                res_q.put(("done", rank, t0, time.time()))
        except Exception:  # noqa: BLE001 - report, do not hang the parent
            res_q.put(("error", rank, traceback.format_exc()))


def k_seeds(methods, ks, fasts, steps, deadline, log, size="search", device="cuda") -> tuple[list[dict], list[str]]:
    """Aggregate steps/s of K concurrent single-seed processes on one GPU."""
    ctx = mp.get_context("spawn")
    kmax = max(ks)
    res_q = ctx.Queue()
    cmd_qs = [ctx.Queue() for _ in range(kmax)]
    procs = [ctx.Process(target=_worker, args=(r, cmd_qs[r], res_q), daemon=True) for r in range(kmax)]
    for p in procs:
        p.start()
    rows, skipped = [], []
    try:
        for method in methods:
            for label, fast_kw in fasts:
                for k in ks:
                    if time.time() > deadline:
                        skipped.append(f"k-seeds {method} {label} K={k}")
                        continue
                    rows.append(_round(method, label, fast_kw, k, steps, cmd_qs, res_q, log, size, device))
    finally:
        for q in cmd_qs:
            q.put(None)
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    return rows, skipped


def _round(method, label, fast_kw, k, steps, cmd_qs, res_q, log, size, device) -> dict:
    for r in range(k):
        cmd_qs[r].put(("prep", method, fast_kw, size, device))
    ready, errors = [], []
    while len(ready) + len(errors) < k:
        msg = res_q.get(timeout=300)
        (ready if msg[0] == "ready" else errors).append(msg[1] if msg[0] == "ready" else msg[2])
    start_at = time.time() + 0.5
    for r in ready:
        cmd_qs[r].put(("go", steps, start_at))
    spans = []
    while len(spans) < len(ready):
        msg = res_q.get(timeout=300)
        if msg[0] == "done":
            spans.append((msg[2], msg[3]))
        else:
            errors.append(msg[2])
            ready.pop()
    if not spans:
        log(f"k-seeds {method:9s} {label:28s} K={k:2d}: failed\n{errors[0] if errors else ''}")
        return {"method": method, "options": label, "K": k, "error": errors[:1]}
    wall = max(e for _, e in spans) - min(s0 for s0, _ in spans)
    agg = len(spans) * steps / wall
    log(f"k-seeds {method:9s} {label:28s} K={k:2d}: {agg:8.2f} steps/s aggregate, {agg / len(spans):6.2f} per seed")
    return {
        "method": method,
        "options": label,
        "K": k,
        "seeds_ran": len(spans),
        "steps_each": steps,
        "wall_s": wall,
        "aggregate_steps_per_s": agg,
        "per_seed_steps_per_s": agg / len(spans),
        "errors": errors[:1],
    }


FASTS = {
    "eager": {},
    "amp=bf16,tf32,channels_last": {"amp": "bf16", "tf32": True, "channels_last": True},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu_check.json"))
    ap.add_argument("--budget-s", type=float, default=240.0, help="start no new measurement after this")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--k", default="1,4,8,16")
    ap.add_argument("--k-steps", type=int, default=10)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the script's logic (use --size tiny)")
    ap.add_argument("--size", default="search", help="benchmark size (search = C=16, N=5, 32x32)")
    args = ap.parse_args()
    t_start = time.time()
    deadline = t_start + args.budget_s

    import torch

    from nasbench_suite.timing import DEFAULT_METHODS, FastOptions, available_methods, environment, format_row, time_one

    def log(msg: str) -> None:
        print(msg, flush=True)

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: torch sees no CUDA device")
    out: dict = {"env": environment(dev), "steps": [], "k_seeds": [], "skipped": [], "notes": []}
    try:
        import xautodl  # noqa: F401
    except ImportError:
        out["notes"].append("xautodl missing: ours only (carry its wheel, see gpu_check.sh)")
    have_ref = not out["notes"]
    names, notes = available_methods(DEFAULT_METHODS)
    out["notes"] += notes

    def save() -> None:
        out["elapsed_s"] = time.time() - t_start
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)

    # 1. step times, ours vs reference
    variants = [("eager", FastOptions()), ("fast", FastOptions(amp="bf16", tf32=True, channels_last=True))]
    log("method     options                        ours ms    ref ms  ref/ours  steps/s        peak MiB")
    for _label, fast in variants:
        for m in names:
            if time.time() > deadline - 150:  # keep time for the K-seeds part
                out["skipped"].append(f"step {m} {fast.label}")
                continue
            try:
                r = time_one(
                    m, size=args.size, device=dev, steps=args.steps, warmup=args.warmup, fast=fast, reference=have_ref
                )
                log(format_row(r))
                out["steps"].append(asdict(r))
            except Exception as e:  # noqa: BLE001 - one failing method must not lose the rest
                log(f"{m} {fast.label}: FAILED {type(e).__name__}: {e}")
                out["steps"].append({"method": m, "options": fast.label, "error": traceback.format_exc()})
            save()
    # 2. K seeds on one GPU
    ks = [int(k) for k in args.k.split(",")]
    km = [m for m in ("darts-v1", "gdas") if m in names]
    rows, skipped = k_seeds(km, ks, list(FASTS.items()), args.k_steps, deadline, log, args.size, args.device)
    out["k_seeds"], out["skipped"] = rows, out["skipped"] + skipped
    save()

    # 3. projected E2NAS search time, from the expensive regime (archive full, three weight passes)
    def ms(method, options):
        for r in out["steps"]:
            if r.get("method") == method and r.get("options") == options and r.get("ours_ms"):
                return r["ours_ms"]
        return None

    proj: dict = {}
    if "e2nas" in names and time.time() < deadline:
        from nasbench_suite.timing import SIZES
        from nasbench_suite_methods.e2nas.bench_step import bench_step

        sz = SIZES[args.size]
        try:
            be = bench_step(
                C=sz["C"],
                N=sz["N"],
                batch_size=sz["batch"] or 64,
                hw=sz["hw"],
                steps=args.steps,
                warmup=args.warmup,
                device=args.device,
            )
            out["e2nas_expensive_regime"] = be
            log(
                f"E2NAS expensive regime ({be['weight_passes_per_e2nas_step']:.0f} weight passes, archive full): "
                f"{be['e2nas_step_ms']:.1f} ms/step vs GDAS {be['gdas_step_ms']:.1f} ms/step, "
                f"ratio {be['ratio_median_of_pairs']:.2f}; novelty {be['novelty_ms']:.2f} ms, decode {be['decode_ms']:.2f} ms"
            )
            ratio = be["ratio_median_of_pairs"]
            proj["eager"] = {
                "ms_per_step": be["e2nas_step_ms"],
                "source": "bench_step (expensive regime)",
                "hours_one_seed": be["e2nas_step_ms"] * EPOCHS * STEPS_PER_EPOCH / 3.6e6,
            }
            g_fast = ms("gdas", "amp=bf16,tf32,channels_last")
            if g_fast:
                e = ratio * g_fast
                proj["amp=bf16,tf32,channels_last"] = {
                    "ms_per_step": e,
                    "source": "GDAS fast step x the eager E2NAS/GDAS ratio",
                    "hours_one_seed": e * EPOCHS * STEPS_PER_EPOCH / 3.6e6,
                }
            for label, p in proj.items():
                # seeds in parallel: the GDAS aggregate rate, scaled by E2NAS's cost relative to GDAS
                per_seed = {
                    r["K"]: ratio * EPOCHS * STEPS_PER_EPOCH * r["K"] / r["aggregate_steps_per_s"] / 3600
                    for r in rows
                    if r.get("method") == "gdas" and r.get("options") == label and r.get("aggregate_steps_per_s")
                }
                if per_seed:
                    p["hours_for_K_seeds_concurrently"] = per_seed
        except Exception as e:  # noqa: BLE001 - the projection must not lose the rest
            log(f"e2nas expensive regime: FAILED {type(e).__name__}: {e}")
            out["e2nas_expensive_regime"] = {"error": traceback.format_exc()}
    elif "e2nas" in names:
        out["skipped"].append("e2nas expensive regime")
    out["e2nas_projection"] = {"epochs": EPOCHS, "steps_per_epoch": STEPS_PER_EPOCH, **proj}
    for label, p in proj.items():
        log(
            f"E2NAS full search ({label}): {p['ms_per_step']:.1f} ms/step -> {p['hours_one_seed']:.2f} h per seed alone"
            + (
                f"; K seeds at once: {p.get('hours_for_K_seeds_concurrently')}"
                if "hours_for_K_seeds_concurrently" in p
                else ""
            )
        )
    save()
    # 4. torch.compile of the mixture forward (last: compiling takes a while)
    if not args.no_compile and "darts-v1" in names:
        # one variant only: compiling the C=16, N=5 mixture graph (forward + backward) takes minutes
        for fast in (FastOptions(amp="bf16", tf32=True, channels_last=True, compile="default"),):
            if time.time() > deadline - 60:
                out["skipped"].append(f"step darts-v1 {fast.label}")
                continue
            t0 = time.time()
            try:
                r = time_one(
                    "darts-v1", size=args.size, device=dev, steps=args.steps, warmup=3, fast=fast, reference=have_ref
                )
                log(format_row(r) + f"  [incl. compile: {time.time() - t0:.0f} s]")
                out["steps"].append(asdict(r) | {"compile_wall_s": time.time() - t0})
            except Exception as e:  # noqa: BLE001
                log(f"darts-v1 {fast.label}: FAILED {type(e).__name__}: {e}")
                out["steps"].append({"method": "darts-v1", "options": fast.label, "error": traceback.format_exc()})
            save()

    log(f"wrote {args.out} ({time.time() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
