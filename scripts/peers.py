#!/usr/bin/env python3
"""Time PyTorch's scaled_dot_product_attention (flash and cuDNN backends) on attnbench shapes and
append rows in attnbench's CSV schema (impl sdpa_flash, sdpa_cudnn), so one plot and one table
show ours against theirs. Needs a GPU and torch.

    scripts/peers.py --T 1024:16384:x2 --B 32768/T --H 2048/D --D 64,128 --causal both \
                     --pass fwd,bwd --dtype bf16 --out results/x/peers.csv

Axes take lists, ranges a:b[:xN|+N] and derived values N/AXIS as `attnbench run` does. Timing
follows attnbench: warm-up, an L2 flush before each timed run, CUDA events, median/p20/p80/min,
noise = IQR/median, sampling until --budget-ms and --min-samples. The backward is timed alone
(torch.autograd.grad over a retained graph). Peers are not checked (status `unchecked`).
Causal with Tq != Tk is skipped: SDPA's is_causal is top-left aligned, attnbench's bottom-right.
"""
import argparse
import csv
import datetime
import itertools
import math
import os
import subprocess
import sys

COLUMNS = ("algo,variant,impl,pass,dtype,B,H,Hkv,Tq,Tk,Dk,Dv,causal,params,status,err,err_base,floor,rel_rms,k,"
           "ms_median,ms_p20,ms_p80,ms_min,noise,samples,tflops,gbps,floor_ms,flop_model,gpu,sm_clock_mhz,driver,cuda,"
           "commit,timestamp,oracle,worst").split(",")
AXES = ["D", "Dk", "Dv", "H", "Hkv", "B", "T", "Tq", "Tk"]


def parse_axis(name, text):
    items = []
    for it in text.split(","):
        it = it.strip()
        if ":" in it:
            parts = it.split(":")
            a, b = int(parts[0]), int(parts[1])
            step = parts[2] if len(parts) > 2 else "x2"
            v = a
            while v <= b:
                items.append(v)
                v = v * int(step[1:]) if step[0] in "x*" else v + int(step.lstrip("+"))
        elif "/" in it:
            x, y = it.split("/")
            items.append(("div", int(x), y) if x.isdigit() else ("div_by", x, int(y)))
        elif it in AXES:
            items.append(("ref", it))
        else:
            v = int(it)
            if v < 1:
                sys.exit(f"peers.py: --{name}: must be >= 1 (got {v})")
            items.append(v)
    return items


def expand(axes):
    out, seen = [], set()
    for combo in itertools.product(*(axes[a] for a in AXES)):
        item = dict(zip(AXES, combo))
        val = {}

        def ev(a, depth=0):
            if a in val:
                return val[a]
            it = item[a]
            if isinstance(it, int):
                v = it
            elif it[0] == "ref":
                v = ev(it[1], depth + 1)
            elif it[0] == "div":
                v = it[1] // ev(it[2], depth + 1)
            else:
                v = ev(it[1], depth + 1) // it[2]
            val[a] = v
            return v

        pt = {a: ev(a) for a in AXES}
        k = tuple(pt[a] for a in AXES)
        if k not in seen and min(pt.values()) >= 1:
            seen.add(k)
            out.append(pt)
    return out


def visible_pairs(tq, tk, causal):
    if not causal:
        return tq * tk
    off = tk - tq
    return sum(min(tk, max(0, i + off + 1)) for i in range(tq))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for a, d in [("B", "1"), ("H", "16"), ("Hkv", "H"), ("T", "1024"), ("Tq", "T"), ("Tk", "T"), ("D", "128"),
                 ("Dk", "D"), ("Dv", "D")]:
        ap.add_argument(f"--{a}", default=d)
    ap.add_argument("--causal", default="both")
    ap.add_argument("--pass", dest="passes", default="fwd,bwd")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--backends", default="flash,cudnn")
    ap.add_argument("--budget-ms", type=float, default=200)
    ap.add_argument("--min-samples", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not torch.cuda.is_available():
        sys.exit("peers.py: no CUDA device visible to torch")
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    axes = {a: parse_axis(a, getattr(args, a)) for a in AXES}
    causals = {"both": [False, True], "yes": [True], "no": [False]}[args.causal]
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    flush = torch.empty(2 * max(getattr(props, "L2_cache_size", 50 << 20), 1 << 20), dtype=torch.uint8, device=dev)
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True,
                                text=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    try:
        import pynvml
        pynvml.nvmlInit()
        nv = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        driver = pynvml.nvmlSystemGetDriverVersion()
        clock = lambda: pynvml.nvmlDeviceGetClockInfo(nv, pynvml.NVML_CLOCK_SM)
    except Exception:  # noqa: BLE001 - NVML is optional
        driver, clock = "", lambda: ""

    def time_fn(fn):
        for _ in range(args.warmup):
            fn()
        torch.cuda.synchronize()
        ms, used = [], 0.0
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        while len(ms) < 200 and (len(ms) < args.min_samples or used < args.budget_ms):
            flush.add_(1)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            t = start.elapsed_time(stop)
            ms.append(t)
            used += t
        ms.sort()
        q = lambda p: ms[min(len(ms) - 1, int(round(p * (len(ms) - 1))))]
        return dict(ms_median=q(0.5), ms_p20=q(0.2), ms_p80=q(0.8), ms_min=ms[0],
                    noise=(q(0.75) - q(0.25)) / q(0.5), samples=len(ms))

    new_file = not os.path.exists(args.out) or os.path.getsize(args.out) == 0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        if new_file:
            w.writeheader()
        for dname in args.dtype.split(","):
            dt = dtypes[dname]
            for pt in expand(axes):
                for causal in causals:
                    B, H, Hkv, Tq, Tk, Dk, Dv = (pt[a] for a in ["B", "H", "Hkv", "Tq", "Tk", "Dk", "Dv"])
                    g = torch.Generator(device=dev).manual_seed(0)
                    q = torch.randn(B, H, Tq, Dk, device=dev, dtype=dt, generator=g, requires_grad=True)
                    k = torch.randn(B, Hkv, Tk, Dk, device=dev, dtype=dt, generator=g, requires_grad=True)
                    v = torch.randn(B, Hkv, Tk, Dv, device=dev, dtype=dt, generator=g, requires_grad=True)
                    do = torch.randn(B, H, Tq, Dv, device=dev, dtype=dt, generator=g)
                    fwd_flops = 2.0 * B * H * (Dk + Dv) * visible_pairs(Tq, Tk, causal)
                    for bname in args.backends.split(","):
                        for pas in args.passes.split(","):
                            row = dict(algo="softmax", variant="", impl=f"sdpa_{bname}", dtype=dname, B=B, H=H, Hkv=Hkv,
                                       Tq=Tq, Tk=Tk, Dk=Dk, Dv=Dv, causal="yes" if causal else "no",
                                       params=f"scale={1 / math.sqrt(Dk):.6g}", flop_model="matmul-pairs",
                                       gpu=torch.cuda.get_device_name(dev), driver=driver,
                                       cuda=torch.version.cuda, commit=commit)
                            row["pass"] = pas
                            try:
                                if causal and Tq != Tk:
                                    raise RuntimeError("skipped:SDPA is_causal is top-left aligned; attnbench's is bottom-right")
                                with sdpa_kernel(backends[bname]):
                                    call = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                                                  enable_gqa=Hkv != H)
                                    if pas == "fwd":
                                        with torch.no_grad():
                                            t = time_fn(call)
                                    else:
                                        out = call()
                                        t = time_fn(lambda: torch.autograd.grad(out, (q, k, v), do, retain_graph=True))
                                        del out
                                row.update({k2: (f"{v2:.6g}" if isinstance(v2, float) else v2) for k2, v2 in t.items()})
                                flops = fwd_flops * (1 if pas == "fwd" else 2.5)
                                row["tflops"] = f"{flops / (t['ms_median'] * 1e-3) / 1e12:.4g}"
                                row["status"] = "unchecked"
                            except RuntimeError as e:
                                msg = str(e).splitlines()[0][:200]
                                row["status"] = msg if msg.startswith("skipped:") else f"skipped:{bname} backend: {msg}"
                            except torch.cuda.OutOfMemoryError:
                                row["status"] = "skipped:out of device memory"
                                torch.cuda.empty_cache()
                            row["sm_clock_mhz"] = clock()
                            row["timestamp"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                            w.writerow(row)
                            f.flush()
                            print(f'[peers] {row["impl"]} {pas} {dname} B={B} H={H} T={Tq}/{Tk} D={Dk} causal={causal}: '
                                  f'{row["status"]} {row.get("ms_median", "")} ms {row.get("tflops", "")} TFLOP/s',
                                  file=sys.stderr, flush=True)
                    del q, k, v, do
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
