"""`routerllm plan`: will this model run on this hardware, and how?"""

from __future__ import annotations

import json
from typing import Any

import typer

HELP = """Plan a model on hardware without loading anything: the accelerate device map (layers per device), bytes per device (weights at their real quantized size, KV cache, activations, CUDA context) against each budget, a verdict (fits_gpu / cpu_offload / disk_offload / cannot_run) with the reason and what would make it fit, predicted load time and a decode tokens/s bound, and the per-GPU table of tensor x pipeline parallel layouts.

--model: a preset (llama3_405b, llama3_70b, llama2_70b, codellama_70b, falcon_40b, falcon_180b, bloom_176b, mistral_7b, starcoder, qwen2_5_7b, qwen2_5_14b, qwen2_5_72b, gemma3_270m), a local checkpoint directory, or a .gguf file. No network is used.

--hardware: a profile such as 3xA100-80GB, 2xH100-80GB, 1xH200, 4xRTX3090, 2xRTX4090, 1xL40S, cpu-laptop (any NxGPU works, e.g. 5xA100-80GB); omitted: this machine is detected.

--engine vllm: check TP x PP layouts against the model (heads divisible by TP, KV heads, layers per stage, memory per GPU) and print the `vllm serve` command and, for --nodes > 1, a Slurm batch script.

Examples:

  routerllm plan --model llama3_405b --hardware 3xA100-80GB --cpu-ram 200GB --quant nf4 --context 4096

  routerllm plan --model llama3_70b --hardware 2xH100-80GB --engine vllm

  routerllm plan --model llama3_405b --hardware 8xH100-80GB --engine vllm --tp 8 --pp 2 --nodes 2

  routerllm plan --model ./my-checkpoint --json
"""


def register(app: typer.Typer) -> None:
    app.command(
        "plan", help=HELP,
        short_help="Will a model fit? Device map, bytes per device, verdict, speed, TP x PP layouts (--engine vllm).",
    )(plan_command)


def plan_command(
    model: str = typer.Option(..., "--model", "-m", help="preset name, local checkpoint directory or .gguf file"),
    hardware: str | None = typer.Option(None, "--hardware", help="profile (e.g. 3xA100-80GB, cpu-laptop); omit to detect this machine"),
    cpu_ram: str | None = typer.Option(None, "--cpu-ram", help="usable CPU RAM, e.g. 200GB (overrides the profile)"),
    disk: str | None = typer.Option(None, "--disk", help="free disk at the offload folder, e.g. 2TB"),
    quant: str = typer.Option("none", "--quant", "-q", help="none | int8 | nf4"),
    dtype: str = typer.Option("bfloat16", "--dtype", help="load dtype: bfloat16 | float16 | float32"),
    context: int = typer.Option(4096, "--context", help="tokens per sequence (prompt + output) to hold KV cache for"),
    batch: str = typer.Option("auto", "--batch", help="sequences decoded together: a number, or auto (the batch with "
                              "the best throughput ceiling, moving layers to offload when that buys a larger batch)"),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", help="tokens each task generates (for tokens/s and tasks/hour)"),
    prompt_tokens: int = typer.Option(160, "--prompt-tokens", help="prompt tokens per task (HumanEval: ~160)"),
    gpu_budget: str | None = typer.Option(None, "--gpu-budget", help="max_memory per GPU, e.g. 70GB (accelerate's meaning)"),
    offload_folder: str = typer.Option("./offload", "--offload-folder", help="where disk offload would go (disk is measured there)"),
    engine: str = typer.Option("accelerate", "--engine", help="accelerate | vllm"),
    tp: int | None = typer.Option(None, "--tp", help="vLLM tensor-parallel size (default: the smallest layout that fits)"),
    pp: int | None = typer.Option(None, "--pp", help="vLLM pipeline-parallel size"),
    nodes: int = typer.Option(1, "--nodes", help="nodes for the vLLM layout (>1 prints a Slurm script)"),
    model_id: str | None = typer.Option(None, "--model-id", help="what `vllm serve` should load (default: the preset's hub id or the path)"),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
) -> None:
    from routerllm.catalog import get_spec
    from routerllm.exceptions import PlanError
    from routerllm.hardware import resolve_hardware
    from routerllm.planning import PlanOptions, plan

    if quant not in ("none", "int8", "nf4"):
        raise PlanError(f"--quant {quant!r} is unknown", fix="use --quant none, int8 or nf4")
    if engine not in ("accelerate", "vllm"):
        raise PlanError(f"--engine {engine!r} is unknown", fix="use --engine accelerate or --engine vllm")
    if nodes < 1:
        raise PlanError(f"--nodes {nodes} must be >= 1", fix="pass --nodes 1 or more")

    def size(flag: str, value: str | None) -> int | None:
        return parse_size_flag(flag, value)

    spec = get_spec(model)
    hw = resolve_hardware(hardware, offload_folder).with_overrides(cpu_ram=size("--cpu-ram", cpu_ram), disk=size("--disk", disk))
    max_memory = None
    gb = size("--gpu-budget", gpu_budget)
    if gb is not None:
        max_memory = {g.index: gb for g in hw.gpus}
        max_memory["cpu"] = hw.cpu_ram
    batch_size: int | str = batch.strip().lower()
    if batch_size != "auto":
        try:
            batch_size = int(batch_size)
        except ValueError:
            raise PlanError(f"--batch {batch!r} is not a number or 'auto'", fix="pass --batch auto or e.g. --batch 16") from None
        if batch_size < 1:
            raise PlanError(f"--batch {batch_size} must be >= 1", fix="pass --batch auto or e.g. --batch 16")
    options = PlanOptions(quantization=quant, dtype=dtype, context_length=context, batch_size=batch_size,  # type: ignore[arg-type]
                          max_memory=max_memory, offload_folder=offload_folder, max_new_tokens=max_new_tokens,
                          prompt_tokens=prompt_tokens)
    result = plan(spec, hw, options)
    vllm = _vllm_section(spec, hw, result, tp=tp, pp=pp, nodes=nodes, model_id=model_id, context=context,
                         dtype=dtype, quant=quant) if engine == "vllm" else None
    if as_json:
        out = result.to_dict()
        if vllm is not None:
            out["vllm"] = vllm
        typer.echo(json.dumps(out, indent=2, default=str))
    else:
        _print_rich(result, vllm)
    if engine == "vllm" and vllm is not None and vllm.get("layout") is None:
        raise typer.Exit(1)


def parse_size_flag(flag: str, value: str | None) -> int | None:
    """A size given on the command line, in bytes; a bare number is refused (`--cpu-ram 200` would be
    200 bytes, never what was meant)."""
    from routerllm.exceptions import PlanError
    from routerllm.units import parse_size

    if value is None:
        return None
    text = str(value).strip()
    try:
        float(text)
    except ValueError:
        pass
    else:
        raise PlanError(f"{flag} {text}: a size needs a unit (a bare number would mean {text} bytes)",
                        fix=f"write {flag} {text}GB (decimal) or {flag} {text}GiB (binary)")
    try:
        return parse_size(text)
    except ValueError as exc:
        raise PlanError(f"{flag}: {exc}", fix=f"e.g. {flag} 200GB") from None


def _vllm_section(spec: Any, hw: Any, result: Any, *, tp: int | None, pp: int | None, nodes: int,
                  model_id: str | None, context: int, dtype: str, quant: str) -> dict[str, Any]:
    from routerllm.planning import memory, parallel

    gpus_per_node = len(hw.gpus) or 8
    gpu_mem = hw.gpus[0].memory_bytes if hw.gpus else 0
    kv_bytes = memory.dtype_bytes(dtype)
    act = memory.activation_bytes(spec, context, 1, kv_bytes) + memory.logits_bytes(spec, 1)
    out: dict[str, Any] = {"problems": [], "notes": []}
    if not gpu_mem:
        out["problems"].append("no GPU on this hardware: vLLM needs GPUs (pass --hardware, e.g. 8xH100-80GB)")
        out["layout"] = None
        return out
    if tp is not None or pp is not None:
        t = tp or 1
        p_ = pp or max(1, nodes if tp else 1)
        layout = parallel.layout_memory(spec, t, p_, weight_bytes_total=result.parallel_weight_bytes_total, gpu_memory_bytes=gpu_mem,
                                        context_length=context, batch_size=1, kv_dtype_bytes=kv_bytes, activation_bytes=act)
        if t * p_ > gpus_per_node * nodes:
            layout.problems.append(f"TP x PP = {t * p_} GPUs but {nodes} node(s) x {gpus_per_node} GPUs = {gpus_per_node * nodes}")
            layout.valid = layout.fits = False
        if t > gpus_per_node:
            layout.notes.append(f"TP={t} spans nodes (more than {gpus_per_node} GPUs per node): slow; prefer TP within a node, PP across nodes")
        if not layout.fits and not layout.problems:
            layout.problems.append(f"needs {layout.total_bytes / 1e9:.1f} GB per GPU, {layout.gpu_bytes / 1e9:.1f} GB usable "
                                   f"(--gpu-memory-utilization {parallel.VLLM_GPU_MEMORY_UTILIZATION})")
    else:
        layout = parallel.best_layout([parallel.Layout(**r) for r in result.parallel], gpus_per_node=gpus_per_node)
        if layout is None:
            out["problems"].append(f"no TP x PP layout of {spec.name} fits GPUs of {gpu_mem / 1e9:.0f} GB at this setting")
            out["layout"] = None
            return out
    out["problems"] += layout.problems
    out["notes"] += layout.notes
    out["layout"] = layout.to_dict() if layout.valid and layout.fits else None
    if out["layout"] is None:
        return out
    nodes_needed = max(nodes, -(-layout.gpus // gpus_per_node))
    target = model_id or spec.hub_id or spec.path or spec.name
    argv = parallel.vllm_serve_command(target, layout, context_length=context, dtype=dtype, quantization=quant,
                                       multi_node=nodes_needed > 1)
    import shlex

    out["command"] = shlex.join(argv)
    out["nodes"] = nodes_needed
    if nodes_needed > 1:
        out["slurm_script"] = parallel.slurm_script(argv, nodes=nodes_needed, gpus_per_node=min(gpus_per_node, layout.gpus))
    if quant == "int8":
        out["notes"].append("vLLM has no in-flight LLM.int8: the command uses --quantization fp8 (8-bit weights)")
    return out


def _gb(n: float) -> str:
    from routerllm.units import format_size

    return format_size(n)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _print_throughput(console: Any, result: Any) -> None:
    from rich.table import Table

    est = result.estimates
    console.print(f"Load time: at least {_duration(result.load_time_floor_s)} (a floor: checkpoint read and copies at "
                  "datasheet bandwidths)")
    console.print(f"Decode: at most {result.decode_tokens_per_s_ceiling:.3g} tokens/s per sequence, "
                  f"{result.tokens_per_s_ceiling:.3g} tokens/s for the batch of {result.batch_size} (ceilings)")
    table = Table(title=f"Throughput ceilings ({est.get('prompt_tokens')}-token prompt, {est.get('new_tokens')} new "
                        "tokens per task; datasheet peaks, so real runs are slower)")
    for col in ("batch", "layers offloaded", "tokens/s at most", "tasks/hour at most", "50 tasks at least",
                "164 tasks at least"):
        table.add_column(col, justify="right")
    for r in result.throughput:
        mark = " (chosen)" if r["chosen"] else ""
        if not r["runs"]:
            table.add_row(f"{r['batch_size']}{mark}", "-", "does not fit", "-", "-", "-")
            continue
        per_batch = r["seconds_per_batch_floor"]
        table.add_row(f"{r['batch_size']}{mark}", str(r["offloaded_layers"]), _num(r["tokens_per_s_ceiling"]),
                      _num(r["tasks_per_hour_ceiling"]), _duration(-(-50 // r["batch_size"]) * per_batch),
                      _duration(-(-164 // r["batch_size"]) * per_batch))
    console.print(table)
    if result.batch_choice:
        console.print(f"Batch (auto): {result.batch_choice['reason']}")
    console.print(f"At batch {est['batch_size']}: 50 tasks take at least {_duration(est['tasks_50_floor_s'])}, "
                  f"164 tasks at least {_duration(est['tasks_164_floor_s'])}")


def _print_rich(result: Any, vllm: dict[str, Any] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    m, hw = result.model, result.hardware
    console.print(f"[bold]{m['name']}[/] ({m['model_type']}, {m['param_count'] / 1e9:.1f}B params, {m['num_layers']} layers) "
                  f"on [bold]{hw['name']}[/] — quantization {result.options['quantization']}, dtype {result.options['dtype']}, "
                  f"context {result.options['context_length']} x batch {result.options['batch_size']}")
    table = Table(title="Placement (accelerate device map)")
    staging = any(d.offload_staging_bytes for d in result.devices)
    cols = (["device", "layers", "weights", "KV cache", "activations", "CUDA context", "headroom"]
            + (["offload staging"] if staging else []))
    for col in cols + ["total", "budget", "fits"]:
        table.add_column(col, justify="right" if col not in ("device",) else "left")
    for d in result.devices:
        layers = f"{d.num_layers}" + (f" ({d.layers[0]}-{d.layers[-1]})" if d.layers else "")
        table.add_row(str(d.device), layers, _gb(d.weight_bytes) + (" q" if d.quantized else ""), _gb(d.kv_bytes),
                      _gb(d.activation_bytes), _gb(d.overhead_bytes), _gb(d.headroom_bytes),
                      *([_gb(d.offload_staging_bytes)] if staging else []), _gb(d.total_bytes),
                      "unlimited" if d.device == "disk" and not d.budget_bytes else _gb(d.budget_bytes),
                      "[green]yes[/]" if d.fits else "[red]no[/]")
    console.print(table)
    head = result.options.get("gpu_headroom_fraction", 0)
    console.print(f"  (q: quantized weights; headroom: {head:.0%} of each GPU kept free for the allocator's fragmentation; "
                  "budget: the device's capacity, explicit max_memory or the hardware's)")
    colour = {"fits_gpu": "green", "cpu_offload": "yellow", "disk_offload": "yellow", "cannot_run": "red"}[result.verdict]
    for w in result.warnings:
        console.print(f"[bold yellow]WARNING:[/] {w}")
    console.print(f"Verdict: [bold {colour}]{result.verdict}[/] — {result.reason}")
    for s in result.suggestions:
        console.print(f"  • {s}")
    for n in result.notes:
        console.print(f"  note: {n}")
    _print_throughput(console, result)
    vllm_w = result.parallel_weight_bytes_total
    console.print(f"Weights total: {_gb(result.weight_bytes_total)}"
                  + (f" (under vLLM: {_gb(vllm_w)})" if vllm_w and vllm_w != result.weight_bytes_total else "")
                  + "; fewest GPUs of this kind that hold it: "
                  f"{result.min_gpus if result.min_gpus is not None else 'none in the table'}")
    if result.parallel:
        ptable = Table(title="Tensor x pipeline parallel, per GPU (vLLM-style)")
        for col in ("TP", "PP", "GPUs", "weights", "KV", "activations", "overhead", "total", "usable", "ok"):
            ptable.add_column(col, justify="right")
        for r in result.parallel:
            if r["gpus"] > 16:  # the --json output has them all
                continue
            ok = "[green]fits[/]" if r["fits"] else ("[red]" + "; ".join(r["problems"])[:60] + "[/]" if r["problems"] else "too big")
            ptable.add_row(str(r["tp"]), str(r["pp"]), str(r["gpus"]), _gb(r["weight_bytes"]), _gb(r["kv_bytes"]),
                           _gb(r["activation_bytes"]), _gb(r["overhead_bytes"]), _gb(r["total_bytes"]), _gb(r["gpu_bytes"]), ok)
        console.print(ptable)
    if vllm is not None:
        console.print("[bold]vLLM[/]")
        for p in vllm.get("problems", []):
            console.print(f"  [red]problem:[/] {p}")
        for n in vllm.get("notes", []):
            console.print(f"  note: {n}")
        if vllm.get("command"):
            lay = vllm["layout"]
            console.print(f"  layout: TP={lay['tp']} x PP={lay['pp']} on {lay['gpus']} GPU(s), {vllm['nodes']} node(s); "
                          f"{_gb(lay['total_bytes'])} per GPU of {_gb(lay['gpu_bytes'])}")
            console.print("  command:")
            console.print(f"    {vllm['command']}", soft_wrap=True, markup=False, highlight=False)
        if vllm.get("slurm_script"):
            console.print("  Slurm batch script:")
            console.print(vllm["slurm_script"], markup=False, highlight=False, soft_wrap=True)
