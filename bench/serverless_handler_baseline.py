# Copied from the team's ../shared/anchors/ (unchanged below this note) so that
# scripts/gpu-check.sh can run it on the GPU machine beside bench_gpu_burst.
# The peer that vidnode replaces: a serverless Python handler (module-level PIPELINES
# cache without a lock, no concurrency limit) hit by 20 simultaneous requests on one GPU,
# then the same handler fixed with a lock and a semaphore(1).
# Run on a GPU machine: python3 seed_handler_baseline.py
# Measured on one H100 80GB (torch 2.11, cu130):
#   locked, 1 request:  1.28 s (0.3 s model load + ~0.8 s of GPU work)
#   naive (no limits):   ok=5 oom=15 model_loads=20 makespan=4.55 s peak=78.3 GiB
#   locked+semaphore:   ok=20 oom=0 model_loads=1 makespan=16.54 s peak=12.3 GiB
import threading, time, torch
dev = "cuda"
GB = 1 << 30
def run(variant, n=20, act_gb=10, iters=2000):
    PIPELINES = {}; loads = [0]; lock = threading.Lock(); sem = threading.Semaphore(1)
    res = {"ok": 0, "oom": 0, "err": 0}; lat = []
    def get_pipeline():
        if variant == "naive":
            if "m" in PIPELINES: return PIPELINES["m"]
            time.sleep(0.3)  # model load time window where the race happens
            loads[0] += 1
            PIPELINES["m"] = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16).repeat(64, 1)  # ~2 GiB weights
            return PIPELINES["m"]
        with lock:
            if "m" not in PIPELINES:
                time.sleep(0.3); loads[0] += 1
                PIPELINES["m"] = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16).repeat(64, 1)
            return PIPELINES["m"]
    def generate(w):
        act = torch.empty(act_gb * GB, dtype=torch.uint8, device=dev)  # activations / latents
        a = w[:8192]
        for _ in range(iters): a = torch.tanh(a @ w[:8192].T[:, :4096])
        torch.cuda.synchronize(); del act
    def handler(i):
        t0 = time.time()
        try:
            w = get_pipeline()
            if variant == "naive": generate(w)
            else:
                with sem: generate(w)
            res["ok"] += 1
        except torch.OutOfMemoryError: res["oom"] += 1
        except Exception as e: res["err"] += 1; print("err", type(e).__name__, str(e)[:100])
        lat.append(time.time() - t0)
    torch.cuda.empty_cache(); torch.cuda.synchronize()
    T = time.time(); ths = [threading.Thread(target=handler, args=(i,)) for i in range(n)]
    [t.start() for t in ths]; [t.join() for t in ths]
    mk = time.time() - T
    print(f"{variant}: ok={res['ok']} oom={res['oom']} err={res['err']} model_loads={loads[0]} makespan={mk:.2f}s peak_alloc={torch.cuda.max_memory_allocated()/GB:.1f}GiB")
    PIPELINES.clear(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
print(torch.cuda.get_device_name(), torch.cuda.mem_get_info()[1] / GB, "GiB")
# single request alone, for the ideal
t = time.time(); run("locked", n=1); print("single request", round(time.time() - t, 2), "s")
run("naive"); run("locked")
